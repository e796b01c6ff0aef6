# For mypy only (see mypy.ini): `minibuild_rules.image_files` is rules/image_files.py.
from rules.image_files import *
