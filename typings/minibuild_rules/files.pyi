# For mypy only (see mypy.ini): `minibuild_rules.files` is rules/files.py.
from rules.files import *
