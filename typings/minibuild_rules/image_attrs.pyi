# For mypy only (see mypy.ini): `minibuild_rules.image_attrs` is rules/image_attrs.py.
from rules.image_attrs import *
