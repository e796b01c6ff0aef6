# For mypy only (see mypy.ini): `minibuild_rules.genrule` is rules/genrule.py.
from rules.genrule import *
