# For mypy only (see mypy.ini): `minibuild_rules.common` is rules/common.py.
from rules.common import *
