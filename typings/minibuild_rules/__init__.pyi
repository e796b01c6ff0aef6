# For mypy only (see mypy.ini): `minibuild_rules` is rules/__init__.py.
from rules import *
