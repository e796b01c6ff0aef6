"""Closure of every ELF executable in /usr/bin and /usr/sbin: `minibuild closure` vs an `ldd` loop vs lddtree.

Each contestant runs as one child process and is measured with wait4(): wall time, CPU time (user+sys,
children included) and peak RSS. The contestants:

  minibuild closure   one CLI call given every file, `python -m minibuild closure --json --allow-missing`, as a
                      user runs it: interpreter start-up, imports and the JSON on stdout included
  minibuild Session   the library API in one process (`elf.Session`), no CLI and no output: what the resolver
                      itself costs
  ldd loop            one `ldd` call per file from a shell loop
  lddtree             pax-utils' lddtree, one process given every file (`--runs` may be 1 for it: `--lddtree-runs`)

One untimed warm-up round, then --runs rounds, interleaved; medians are printed with the ratios against the
CLI call. Goals (issue 17): the CLI 20x faster than the ldd loop and 50x faster than lddtree.

    python benchmarks/closure.py [--runs 5] [--lddtree-runs 3] [--dirs /usr/bin /usr/sbin]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.user_env import compile_minibuild, user_env  # noqa: E402 - after the path is set

GOALS = {"ldd loop": 20.0, "lddtree": 50.0}
BASE = "minibuild closure"


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


def worker(listfile: str) -> None:
    """The library contestant: one Session in its own process, so its imports are counted too."""
    from minibuild.elf import Session
    from minibuild.errors import ElfError

    paths = Path(listfile).read_text().split("\n")
    session = Session("/")
    ok = failed = 0
    for p in paths:
        try:
            session.resolve([p])
            ok += 1
        except ElfError:
            failed += 1
    print(f"{ok} resolved, {failed} refused")


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
    if proc.returncode != 0 and argv[:1] != ["bash"]:  # the ldd loop's status is its last ldd's
        sys.exit(f"failed ({proc.returncode}): {' '.join(argv[:6])} ...")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, text


def _env() -> dict[str, str]:
    # Python contestants run as installed programs do, with compiled bytecode (benchmarks/user_env.py);
    # no LD_* variable of the caller's reaches ldd.
    return {k: v for k, v in user_env().items() if not k.startswith("LD_")}


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
    ap.add_argument("--lddtree-runs", type=int, default=3, help="lddtree takes half a minute a run")
    ap.add_argument("--dirs", nargs="+", default=["/usr/bin", "/usr/sbin"])
    ap.add_argument("--worker", metavar="LISTFILE", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker)
        return 0

    paths = executables(args.dirs)
    with tempfile.NamedTemporaryFile("w", suffix=".list", delete=False) as fh:
        fh.write("\n".join(paths))
        listfile = fh.name
    contestants: dict[str, list[str]] = {
        BASE: [sys.executable, "-m", "minibuild", "closure", "--json", "--allow-missing", *paths],
        "minibuild Session": [sys.executable, str(Path(__file__).resolve()), "--worker", listfile],
        "ldd loop": ["bash", "-c", 'for f in "$@"; do ldd "$f"; done >/dev/null 2>&1', "bash", *paths],
    }
    lddtree = lddtree_command()
    if lddtree and args.lddtree_runs > 0:
        contestants["lddtree"] = [*lddtree, *paths]
    print(f"{len(paths)} ELF executables in {' '.join(args.dirs)}; {args.runs} runs each "
          f"(lddtree {min(args.runs, args.lddtree_runs)}); {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")

    notes: dict[str, str] = {}
    compile_minibuild(sys.executable)
    for argv in contestants.values():  # warm-up, untimed: page cache and bytecode for everyone
        measure(argv)
    results: dict[str, list[tuple[float, float, int]]] = {name: [] for name in contestants}
    for run in range(args.runs):
        for name, argv in contestants.items():  # interleaved, so load spikes hit every contestant
            if name == "lddtree" and run >= args.lddtree_runs:
                continue
            wall, cpu, rss, out = measure(argv)
            results[name].append((wall, cpu, rss))
            if name == BASE:
                doc = json.loads(out)
                missing = sum(1 for c in doc.values() if c["missing"])
                notes[name] = f"{len(doc)} closures, {missing} with a library missing, {len(out):,} bytes of JSON"
            elif name == "minibuild Session":
                notes[name] = out.strip()
    os.unlink(listfile)

    med = {name: (statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs),
                  max(r[2] for r in rs)) for name, rs in results.items() if rs}
    base_wall, base_cpu, _ = med[BASE]
    print(f"{'contestant':20} {'wall s':>8} {'cpu s':>8} {'peak RSS':>10} {'wall x':>8} {'cpu x':>8}")
    for name, (wall, cpu, rss) in med.items():
        print(f"{name:20} {wall:8.2f} {cpu:8.2f} {rss / 1024:8.1f}MB {wall / base_wall:8.1f} {cpu / base_cpu:8.1f}"
              + (f"   {notes[name]}" if name in notes else ""))
    print(f"(x = time relative to `{BASE}`, the one CLI call; medians of wall and CPU time, max of peak RSS)")
    for name, goal in GOALS.items():
        if name in med:
            ratio = med[name][0] / base_wall
            print(f"goal: {BASE} {goal:.0f}x faster than {name.replace('ldd loop', 'the ldd loop')}: {ratio:.1f}x wall "
                  f"({med[name][1] / base_cpu:.1f}x CPU) -> {'met' if ratio >= goal else 'NOT met'}")
    if not lddtree:
        print("lddtree not found (package pax-utils, and a python3 with pyelftools)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
