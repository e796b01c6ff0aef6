"""Closure of every ELF executable in /usr/bin and /usr/sbin: minibuild vs an `ldd` loop vs lddtree.

Each contestant runs as one child process (minibuild: one Python process resolving every file;
ldd: one `ldd` call per file from a shell loop; lddtree: one process given every file) and is
measured with wait4(): wall time, CPU time (user+sys, children included) and peak RSS. One untimed
warm-up round, then several runs, interleaved; medians are printed with the ratios.

    python benchmarks/closure.py [--runs 5] [--dirs /usr/bin /usr/sbin]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def executables(dirs: list[str]) -> list[str]:
    out = []
    for d in dirs:
        for name in sorted(os.listdir(d)):
            p = os.path.join(d, name)
            try:
                if not (os.path.isfile(p) and os.access(p, os.X_OK)):
                    continue
                with open(p, "rb") as fh:
                    if fh.read(4) == b"\x7fELF":
                        out.append(p)
            except OSError:
                continue
    return out


def worker(mode: str, listfile: str) -> None:
    """The minibuild contestant: runs in its own process so startup and imports are counted."""
    sys.path.insert(0, str(REPO))
    from minibuild.elf import Session, resolve
    from minibuild.errors import ElfError

    paths = Path(listfile).read_text().split("\n")
    session = Session("/") if mode == "session" else None
    ok = failed = 0
    for p in paths:
        try:
            session.resolve([p]) if session else resolve([p])
            ok += 1
        except ElfError:
            failed += 1
    print(f"{ok} {failed}")


def measure(argv: list[str]) -> tuple[float, float, int, str]:
    """(wall seconds, CPU seconds of the process tree, peak RSS in KiB, stdout)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.DEVNULL, env=_env())
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        out.seek(0)
        text = out.read().decode(errors="replace")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, text


_PYCACHE = tempfile.mkdtemp(prefix="closure-bench-pycache-")


def _env() -> dict[str, str]:
    # Python contestants run as installed programs do: with compiled bytecode (kept out of the
    # source tree), whatever PYTHONDONTWRITEBYTECODE the calling shell has.
    env = {k: v for k, v in os.environ.items() if not k.startswith("LD_") and k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = _PYCACHE
    return env


def lddtree_command() -> list[str] | None:
    """lddtree is `#!/usr/bin/env python3`: find a Python that has pyelftools (docs/loader.md#s3)."""
    script = shutil.which("lddtree")
    if not script:
        return None
    for py in ("/usr/bin/python3", sys.executable):
        if os.path.exists(py) and subprocess.run([py, "-c", "import elftools"], capture_output=True).returncode == 0:
            return [py, script]
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--dirs", nargs="+", default=["/usr/bin", "/usr/sbin"])
    ap.add_argument("--worker", nargs=2, metavar=("MODE", "LISTFILE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker)
        return 0

    paths = executables(args.dirs)
    with tempfile.NamedTemporaryFile("w", suffix=".list", delete=False) as fh:
        fh.write("\n".join(paths))
        listfile = fh.name
    me = [sys.executable, str(Path(__file__).resolve()), "--worker"]
    contestants: dict[str, list[str]] = {
        "minibuild resolve()": [*me, "oneshot", listfile],
        "minibuild Session": [*me, "session", listfile],
        "ldd loop": ["bash", "-c", 'for f in "$@"; do ldd "$f"; done >/dev/null 2>&1', "bash", *paths],
    }
    lddtree = lddtree_command()
    if lddtree:
        contestants["lddtree"] = [*lddtree, *paths]
    print(f"{len(paths)} ELF executables in {' '.join(args.dirs)}; {args.runs} runs each; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")

    for argv in contestants.values():  # warm-up, untimed: page cache and bytecode for everyone
        measure(argv)
    results: dict[str, list[tuple[float, float, int]]] = {name: [] for name in contestants}
    for _ in range(args.runs):
        for name, argv in contestants.items():  # interleaved, so load spikes hit every contestant
            wall, cpu, rss, out = measure(argv)
            results[name].append((wall, cpu, rss))
            if name.startswith("minibuild") and out.split():
                ok, failed = out.split()[:2]
                contestants_note[name] = f"{ok} resolved, {failed} refused"
    os.unlink(listfile)
    shutil.rmtree(_PYCACHE, ignore_errors=True)

    med = {name: (statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs),
                  max(r[2] for r in rs)) for name, rs in results.items()}
    base_wall, base_cpu, _ = med["minibuild resolve()"]
    print(f"{'contestant':22} {'wall s':>8} {'cpu s':>8} {'peak RSS':>10} {'wall x':>8} {'cpu x':>8}")
    for name, (wall, cpu, rss) in med.items():
        print(f"{name:22} {wall:8.2f} {cpu:8.2f} {rss / 1024:8.1f}MB {wall / base_wall:8.1f} {cpu / base_cpu:8.1f}"
              + (f"   {contestants_note[name]}" if name in contestants_note else ""))
    print("(x = time relative to `minibuild resolve()`; medians of wall and CPU time, max of peak RSS)")
    if not lddtree:
        print("lddtree not found (package pax-utils, and a python3 with pyelftools)")
    return 0


contestants_note: dict[str, str] = {}

if __name__ == "__main__":
    raise SystemExit(main())
