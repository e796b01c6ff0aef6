# For mypy only (see mypy.ini): `minibuild_rules.image_test` is rules/image_test.py.
from rules.image_test import *
