"""minibuild versus the hand method for the bash image, side by side in one run, cold every time.

Two rows (issue 17), each a job a user times:

  build + load   hand: `ldd /bin/bash`, `cp -L --parents` the binary, its libraries and the loader into an
                 empty folder, `FROM scratch` + `COPY . /`, `docker build --no-cache`.
                 minibuild: `minibuild build //images:bash` on an empty cache (it loads the image into Docker).
  build + push   hand: the same, then `docker push`.
                 minibuild: `minibuild push //images:bash --to ...` on an empty cache (it builds, and pushes
                 without a daemon; nothing is loaded). The push step alone is shown too: `docker push` against
                 `minibuild push` of the image the build + load run just built.

Cold honestly: before every timed command both images are removed from the engine (an image already loaded
at the same digest skips the load), each minibuild command runs in a fresh copy of the workspace (an empty
cache), and every push goes to a repository of its own. Layers must be new to the engine and the registry too:
the engine applies only the layers it lacks (a load whose layers other images hold took half the time), and
tests load the very same bash image under other tags. The hand method's layer differs each run anyway (`cp`
gives the files new times); minibuild's runs get the same through SOURCE_DATE_EPOCH, a new one each command,
which changes the times in every layer and nothing else. The digest printed is the one of the default epoch. Runs are
interleaved, the order of the two methods alternating, so both see the same machine state; medians of
`--runs` and the ratios are printed.

Then where minibuild's time goes, from one more cold build + load run through a small driver that times the
CLI's own phases (the same `minibuild build`, with its functions wrapped to note when they start and end):
interpreter start-up, imports, the analysis, each action, the load, exit. Timed runs have bytecode caching on
and minibuild compiled first (benchmarks/user_env.py), as an installed minibuild has it.

Needs a Docker engine and a registry on 127.0.0.1:5000 (`bash scripts/test.sh --setup-only` starts both).

    python benchmarks/bash_image.py [--runs 5] [--registry 127.0.0.1:5000] [--no-breakdown]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.user_env import user_env  # noqa: E402 - after the path is set

TAG = "minibuild-bench/bash:latest"  # a tag of its own: the run neither replaces nor reuses `images/bash`
HAND_REPO = "minibuild-bench/hand-bash"


def run_cmd(cmd: list[str], cwd: Path | None = None, **env: str) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=user_env(**env))
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return elapsed, proc.stdout + proc.stderr


def remove_images() -> None:
    """Both images out of the engine, so neither method finds its layers or its image there."""
    out = subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"], capture_output=True,
                         text=True, check=True).stdout.split()
    mine = [t for t in out if t == TAG or t.startswith(HAND_REPO + ":")]
    if mine:
        subprocess.run(["docker", "rmi", "-f", *mine], capture_output=True, check=True)


def hand_method(work: Path, registry: str, push_repo: str, run: int) -> dict[str, float]:
    """ldd + cp + docker build, then docker push, timed as a person would run them."""
    remove_images()
    root = work / f"hand{run}"
    root.mkdir()
    tag = f"{HAND_REPO}:{run}"
    start = time.perf_counter()
    ldd = subprocess.run(["ldd", "/bin/bash"], capture_output=True, text=True, check=True).stdout
    paths = ["/bin/bash", *re.findall(r"(/\S+) \(0x", ldd)]
    subprocess.run(["cp", "-L", "--parents", *paths, str(root)], check=True)
    (root / "Dockerfile").write_text('FROM scratch\nCOPY . /\nENTRYPOINT ["/bin/bash"]\n')
    (root / ".dockerignore").write_text("Dockerfile\n")
    run_cmd(["docker", "build", "--no-cache", "-q", "-t", tag, str(root)])
    build_s = time.perf_counter() - start
    size = int(subprocess.run(["docker", "image", "inspect", "--format", "{{.Size}}", tag], capture_output=True,
                              text=True, check=True).stdout)
    remote = f"{registry}/{push_repo}:1"
    subprocess.run(["docker", "tag", tag, remote], check=True)
    push_s, out = run_cmd(["docker", "push", remote])
    if "Pushed" not in out or "Mounted from" in out or "already exists" in out:
        sys.exit(f"docker push did not upload its layer, so it was not cold:\n{out}")
    subprocess.run(["docker", "rmi", remote], capture_output=True, check=True)
    return {"build": build_s, "push_step": push_s, "build_push": build_s + push_s, "size": size}


def workspace_copy(work: Path, name: str) -> Path:
    ws = work / name
    shutil.copytree(REPO / "images", ws / "images")
    shutil.copy(REPO / "workspace.toml", ws / "workspace.toml")
    build = ws / "images" / "BUILD.toml"
    build.write_text(build.read_text().replace('name = "bash"\n', f'name = "bash"\ntag = "{TAG}"\n', 1))
    return ws


MB = [sys.executable, "-m", "minibuild"]


def fresh_epoch() -> str:
    """A SOURCE_DATE_EPOCH no build used before (one in a billion): every layer of the image is new."""
    return str(random.randrange(10**9, 2**31))


def minibuild_method(work: Path, registry: str, push_repos: tuple[str, ...], run: int) -> dict[str, float]:
    remove_images()
    ws = workspace_copy(work, f"mb{run}")
    epoch = fresh_epoch()
    build_s, out = run_cmd([*MB, "build", "//images:bash", "--quiet"], cwd=ws, SOURCE_DATE_EPOCH=epoch)
    if "docker loaded" not in out:
        sys.exit(f"minibuild build did not load the image, so it was not cold:\n{out}")
    # The push step alone, of the image just built (its build is a cached no-op): what `docker push` is to hand.
    step_s, out = run_cmd([*MB, "push", "//images:bash", "--to", f"{registry}/{push_repos[0]}:1"], cwd=ws,
                          SOURCE_DATE_EPOCH=epoch)
    if " uploaded," not in out or "0 uploaded" in out:
        sys.exit(f"minibuild push uploaded nothing, so it was not cold:\n{out}")
    remove_images()
    fresh = workspace_copy(work, f"mbpush{run}")
    push_s, _ = run_cmd([*MB, "push", "//images:bash", "--to", f"{registry}/{push_repos[1]}:1"], cwd=fresh,
                        SOURCE_DATE_EPOCH=fresh_epoch())
    return {"build": build_s, "push_step": step_s, "build_push": push_s}


# The breakdown: `minibuild build` run by main() as `python -m minibuild` does, with some of its functions
# wrapped to note (phase, start, end) in seconds since the driver started; printed as JSON at exit.
DRIVER = r"""
import json, sys, threading, time
t0 = time.perf_counter()
marks = []
lock = threading.Lock()
def note(name, a, b):
    with lock:
        marks.append((name, a - t0, b - t0))
def wrap(owner, attr, name):
    inner = getattr(owner, attr)
    def timed(*args, **kwargs):
        a = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            note(name if isinstance(name, str) else name(args), a, time.perf_counter())
    setattr(owner, attr, timed)
from minibuild.cli import main as cli_main
import minibuild.cli.commands.build as command
note("imports: the CLI and the build command", t0, time.perf_counter())
import minibuild.build as engine
from minibuild.oci import daemon
from minibuild.cli import ui
wrap(engine, "analyse", "analysis (stored, or BUILD files and rules)")
wrap(daemon.EngineLoader, "__init__", "load: starting the process that talks to the engine")
wrap(daemon.EngineLoader, "ready", "load: waiting for it to connect (it started before the build)")
wrap(daemon.EngineLoader, "load", "load: the tarball sent, the engine storing it")
started = {}
event = ui.Progress.event
def on_event(self, ev):
    now = time.perf_counter()
    if ev.kind == "start":
        started[ev.action.id] = now
    elif ev.kind == "done" and ev.action.id in started:
        note("action: " + ev.action.description, started.pop(ev.action.id), now)
    return event(self, ev)
ui.Progress.event = on_event
run = command.run
def timed_run(args):
    a = time.perf_counter()
    try:
        return run(args)
    finally:
        note("command: from parsing to the end", a, time.perf_counter())
command.run = timed_run
try:
    code = cli_main.main()  # as the program runs it: sys.argv, and the exit as the program's
finally:
    note("driver: all", t0, time.perf_counter())
    sys.stderr.write("\nMARKS " + json.dumps(marks) + "\n")
raise SystemExit(code)
"""


def breakdown(work: Path) -> None:
    remove_images()
    ws = workspace_copy(work, "breakdown")
    wall, out = run_cmd([sys.executable, "-c", DRIVER, "build", "//images:bash", "--plain"], cwd=ws,
                        SOURCE_DATE_EPOCH=fresh_epoch())
    marks = json.loads(out.rsplit("MARKS ", 1)[1].splitlines()[0])
    whole = next(b for n, a, b in marks if n == "driver: all")
    print(f"\nwhere minibuild's cold build + load goes (one run, {wall:.3f} s wall; seconds since the driver "
          f"started, phases in order of their start):")
    print(f"  {'interpreter start-up and exit (wall minus the driver)':66}{'':>16}{wall - whole:8.3f}")
    shown = set()
    for name, a, b in sorted(marks, key=lambda m: (m[1], -m[2])):
        if name != "driver: all" and name not in shown:  # a phase called again (a cached answer) shown once
            shown.add(name)
            print(f"  {name[:66]:66}{a:8.3f}{b:8.3f}{b - a:8.3f}")
    for line in out.splitlines():
        if line.startswith("  docker") or line.startswith("built "):
            print(f"  ({line.strip()})")
    remove_images()


def sizes(work: Path, hand: int) -> dict[str, Any]:
    _, out = run_cmd([*MB, "build", "//images:bash", "--json", "--no-load"], cwd=workspace_copy(work, "sizes"))
    target = json.loads(out[: out.rindex("}") + 1])["targets"][0]
    return {"hand": hand, "minibuild": target["size"], "minibuild_compressed": target["compressed_size"],
            "digest": target["digest"]}


ROWS = (("build", "build + load"), ("build_push", "build + push"), ("push_step", "push step alone"))


def report(results: dict[str, list[dict[str, float]]], runs: int) -> None:
    med = {m: {k: statistics.median(r[k] for r in rs) for k, _ in ROWS} for m, rs in results.items()}
    print(f"bash image, cold, {runs} interleaved runs each, medians in seconds (min-max):")
    print(f"  {'':22}{'hand method':>22}{'minibuild':>22}{'ratio':>8}")
    for key, label in ROWS:
        cells = []
        for m in ("hand", "minibuild"):
            values = [r[key] for r in results[m]]
            cells.append(f"{med[m][key]:.3f} ({min(values):.2f}-{max(values):.2f})")
        ratio = med["hand"][key] / med["minibuild"][key]
        print(f"  {label:22}{cells[0]:>22}{cells[1]:>22}{ratio:7.2f}x")
    print("  (ratio > 1: minibuild is faster. hand build: ldd + cp + docker build --no-cache; hand push: docker push;"
          "\n   minibuild build + push: one `minibuild push` on an empty cache, no load)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--registry", default="127.0.0.1:5000")
    ap.add_argument("--no-breakdown", action="store_true", help="skip the timed phases of one more cold build")
    args = ap.parse_args()
    results: dict[str, list[dict[str, float]]] = {"hand": [], "minibuild": []}
    # Compiled once, as an installed minibuild is, so no timed run pays for compiling (benchmarks/user_env.py).
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "minibuild"), str(REPO / "rules")],
                   env=user_env(), check=True)
    nonce = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        workspace_copy(work, "warmup")  # an untimed build fills the bytecode cache for the driver's modules too
        run_cmd([*MB, "build", "//images:bash", "--quiet", "--no-load"], cwd=work / "warmup")
        for run in range(args.runs):
            repos = (f"bench-{nonce}/hand-{run}", f"bench-{nonce}/mb-step-{run}", f"bench-{nonce}/mb-{run}")
            for method in (("hand", "minibuild") if run % 2 == 0 else ("minibuild", "hand")):
                if method == "hand":
                    results["hand"].append(hand_method(work, args.registry, repos[0], run))
                else:
                    results["minibuild"].append(minibuild_method(work, args.registry, repos[1:], run))
        size = sizes(work, int(results["hand"][0]["size"]))
        remove_images()
        report(results, args.runs)
        print(f"  image bytes: hand {size['hand']:,}, minibuild {size['minibuild']:,} "
              f"(+{size['minibuild'] - size['hand']:,} of runtime files), minibuild compressed "
              f"{size['minibuild_compressed']:,}; minibuild digest {size['digest']}")
        if not args.no_breakdown:
            breakdown(work)
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end ({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
