# For mypy only (see mypy.ini): `minibuild_rules.providers` is rules/providers.py.
from rules.providers import *
