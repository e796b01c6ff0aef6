"""The loopback Debian repository of tests/packages, for images on a package sysroot (a lock, `.deb` files)."""

from tests.packages.conftest import debs, keys, pkg_ws, repo  # noqa: F401 - the fixtures, for tests here
