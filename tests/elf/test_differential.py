"""docs/loader.md#sec-11: every ELF file of the machine, resolved by minibuild and by the real loader.

Corpus: regular ELF files (symlinked paths included) under /usr/bin, /usr/sbin and
/usr/lib/x86_64-linux-gnu. Oracle: the glibc loader in trace mode (kernel exec for programs, so
`$ORIGIN` is right through symlinks; `ld.so --list` for libraries and non-executable files). Both
sides are compared name by name on realpaths. A disagreement fails unless
tests/elf/known_exceptions.toml lists the path with a reason. The file list is discovered at run
time, so the test does not depend on what one machine has installed.
"""

from __future__ import annotations

import os
import sys
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from minibuild.elf import ResolveOptions, resolve
from minibuild.errors import ElfError
from tests.elf import compare, oracle

DIRS = ("/usr/bin", "/usr/sbin", "/usr/lib/x86_64-linux-gnu")
LOADER_REAL = os.path.realpath(oracle.GLIBC_LOADER)
EXCEPTIONS = Path(__file__).with_name("known_exceptions.toml")


def corpus() -> list[str]:
    paths = []
    for d in DIRS:
        try:
            names = sorted(os.listdir(d))
        except OSError:
            continue
        for name in names:
            p = os.path.join(d, name)
            try:
                if not os.path.isfile(p):
                    continue
                with open(p, "rb") as fh:
                    if fh.read(4) != b"\x7fELF":
                        continue
            except OSError:
                continue
            paths.append(p)
    return paths


def known_exceptions() -> dict[str, str]:
    data = tomllib.loads(EXCEPTIONS.read_text())
    return {e["path"]: e["reason"] for e in data.get("exception", [])}


def _ours(path: str, options: ResolveOptions) -> tuple[dict, dict] | str:
    try:
        closure = resolve([path], "/", options)
    except ElfError as exc:
        return f"error: {exc.message}"
    return compare.ours(closure, LOADER_REAL), compare.ours(closure, LOADER_REAL, strict=True)


def _theirs(path: str) -> tuple[dict, dict] | str | None:
    t = oracle.trace(path)
    if t is None:
        return None
    if t.fatal:
        return f"fatal: {t.fatal}"
    return compare.theirs(t, LOADER_REAL), compare.theirs(t, LOADER_REAL, strict=True)


def test_differential_against_the_loader(capsys):
    paths = corpus()
    assert len(paths) > 200, "the corpus looks empty"
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(2, (os.cpu_count() or 2) * 2)) as pool:
        expected = list(pool.map(_theirs, paths))
    oracle_s = time.monotonic() - start
    options = ResolveOptions(allow_missing=True, cpu_level=oracle.glibc_cpu_level(),
                             platform=oracle.glibc_diagnostics().get("dl_platform"))
    start = time.monotonic()
    got = [_ours(p, options) for p in paths]
    ours_s = time.monotonic() - start

    exceptions = known_exceptions()
    agreed = identical = total = 0
    failures = []
    for path, want, have in zip(paths, expected, got, strict=True):
        if want is None:
            continue  # not a loadable object, or a foreign interpreter the oracle must not run
        total += 1
        both_fail = isinstance(want, str) and isinstance(have, str)
        if both_fail or (not isinstance(want, str) and not isinstance(have, str) and want[0] == have[0]):
            agreed += 1
            identical += both_fail or want[1] == have[1]  # the stricter variant: raw path strings
        elif path not in exceptions:
            failures.append(f"{path}:\n  loader:    {want if isinstance(want, str) else want[0]}\n"
                            f"  minibuild: {have if isinstance(have, str) else have[0]}")
    with capsys.disabled():
        sys.stdout.write(f"\nagreed {agreed} of {total}; identical path strings {identical} of {total} "
                         f"(oracle {oracle_s:.1f}s, minibuild {ours_s:.1f}s, {len(exceptions)} known exceptions)\n")
    assert not failures, f"agreed {agreed} of {total}; disagreements:\n" + "\n".join(failures[:30])
