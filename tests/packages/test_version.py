"""Debian version ordering against dpkg itself (`dpkg --compare-versions`), over generated pairs."""

from __future__ import annotations

import random
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from minibuild.packages.version import Version, compare, satisfies

_PIECES = ["0", "1", "2", "9", "10", "010", "99", "a", "b", "z", "A", "Z", "~", "~~", "+", ".", "~rc1", "+b1",
           "+deb12u1", "~bpo12", ".0", "git", "dfsg"]


def _version(rng: random.Random) -> str:
    epoch = rng.choice(["", "", "", "0:", "1:", "2:"])
    upstream = rng.choice("0123456789") + "".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 4)))
    if rng.random() < 0.6:
        revision = rng.choice("0123456789a") + "".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 3)))
        upstream = upstream.replace("-", "") + ("-" + revision.replace("-", "").replace(":", ""))
    return epoch + upstream.replace(":", "")


def _pairs(n: int) -> list[tuple[str, str]]:
    rng = random.Random(13)
    pairs = []
    for _ in range(n):
        a = _version(rng)
        # near misses compare the interesting cases: a version against a small edit of itself
        b = rng.choice([_version(rng), a + rng.choice(_PIECES), a.replace("~", "", 1), a.rstrip("0") or "0", a])
        pairs.append((a, b))
    return pairs


def _dpkg(a: str, b: str) -> int:
    lt = subprocess.run(["dpkg", "--compare-versions", a, "lt", b]).returncode == 0
    eq = subprocess.run(["dpkg", "--compare-versions", a, "eq", b]).returncode == 0
    return -1 if lt else 0 if eq else 1


def test_compare_agrees_with_dpkg_on_1500_generated_pairs():
    pairs = [(a, b) for a, b in _pairs(1500) if _valid(a) and _valid(b)]
    assert len(pairs) > 1200
    with ThreadPoolExecutor(8) as pool:
        expected = list(pool.map(lambda p: _dpkg(*p), pairs))
    wrong = [(a, b, e, compare(a, b)) for (a, b), e in zip(pairs, expected, strict=True) if compare(a, b) != e]
    assert wrong == []
    assert {-1, 0, 1} <= set(expected)


def _valid(v: str) -> bool:
    """dpkg warns about (and we refuse) a version whose upstream part starts with a non-digit."""
    try:
        Version.parse(v)
    except ValueError:
        return False
    return subprocess.run(["dpkg", "--validate-version", v], capture_output=True).returncode == 0


@pytest.mark.parametrize("a, op, b", [("1.0~rc1", "<<", "1.0"), ("1:0.1", ">>", "9.9"), ("1.0-1", "<<", "1.0-1+b1"),
                                      ("2.36-9+deb12u4", ">=", "2.34"), ("1.0", "=", "1.0-0"), ("1.0", "=", "1.00")])
def test_satisfies_matches_dpkg(a, op, b):
    dpkg_op = {"<<": "lt", "<=": "le", "=": "eq", ">=": "ge", ">>": "gt"}[op]
    assert satisfies(a, op, b) is (subprocess.run(["dpkg", "--compare-versions", a, dpkg_op, b]).returncode == 0)


@pytest.mark.parametrize("text", ["", "a1.0", "1:", "x:1.0", "1.0-", "1.0-a b"])
def test_malformed_versions_are_refused(text):
    with pytest.raises(ValueError):
        Version.parse(text)
