# For mypy only (see mypy.ini): `minibuild_rules.test_providers` is rules/test_providers.py.
from rules.test_providers import *
