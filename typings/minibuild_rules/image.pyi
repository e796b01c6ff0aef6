# For mypy only (see mypy.ini): `minibuild_rules.image` is rules/image.py.
from rules.image import *
