"""A catalog of N minimal images of host programs: cold build, no-op rebuild, one-file rebuild, and the
same 50 images built by hand with `docker build`, side by side in one run.

The generator writes a workspace of N `image` targets (N = 50 and 200 by default) in 10 packages, each
over a different dynamically linked program of /usr/bin, sharing two `files` groups and one `genrule`
between them. Measured, each as a user runs it (`python -m minibuild ...`, CLI start-up included):

  cold      `build //... --no-load` on an empty cache (once)
  no-op     the same again, nothing changed (median of --runs)
  one file  after changing a file of one shared group; checks that exactly the images using that group
            rebuilt (from `--json` `rebuilt`) and that only their actions ran
  docker    the first 50 images as `FROM scratch` + `COPY . /` folders made by the hand method (`ldd`, then
            `cp -L --parents` of the program, its libraries and the loader, plus the same shared files); one
            full pass of 50 `docker build`s to warm the build cache, then timed warm passes (median of 3)

Goals (issue 4): a no-op rebuild of the 200-image catalog under 0.5 s wall; at least 20x faster than
the warm `docker build` of the 50 images.

    python benchmarks/catalog.py [--sizes 50 200] [--runs 5] [--docker-passes 3] [--no-docker] [--profile]

`--profile` adds where the no-op time of the largest catalog goes: `python -X importtime` (the slowest
imports) and cProfile of `python -m minibuild build //... --no-load` (top functions by cumulative and own
time). Peak memory is the largest resident set of any minibuild process (getrusage RUSAGE_CHILDREN),
read before the Docker part starts.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import re
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.user_env import compile_minibuild, user_env  # noqa: E402 - after the path is set

PACKAGES = 10
PT_INTERP = 3
DOCKER_IMAGES = 50
SHARED = {
    # group -> {file in shared/: (destination, content)}
    "etc": {"motd": ("/etc/motd", "built by the catalog benchmark\n"),
            "nsswitch.conf": ("/etc/nsswitch.conf", "passwd: files\ngroup: files\nhosts: files dns\n")},
    "share": {"issue": ("/etc/issue", "catalog \\n \\l\n"),
              "profile": ("/etc/profile", "export PS1='$ '\n")},
}
VERSION_CMD = "tr a-z A-Z < $(SRC) > $(OUT)"
VERSION_IN = "catalog version one\n"


# -- the generator --------------------------------------------------------------------------------------
def is_dynamic_elf(path: Path) -> bool:
    """A 64-bit little-endian ELF executable with a PT_INTERP program header (so, dynamically linked)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
                return False
            phoff, = struct.unpack_from("<Q", head, 32)
            phentsize, phnum = struct.unpack_from("<HH", head, 54)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except OSError:
        return False
    return any(struct.unpack_from("<I", table, i * phentsize)[0] == PT_INTERP for i in range(phnum))


def ldd_paths(binary: str) -> list[str] | None:
    """The hand method's file list: the program, each library `ldd` shows and the loader; None if one is missing."""
    proc = subprocess.run(["ldd", binary], capture_output=True, text=True)
    if proc.returncode != 0 or "not found" in proc.stdout:
        return None
    return [binary, *re.findall(r"(/\S+) \(0x", proc.stdout)]


def pick_binaries(count: int) -> list[str]:
    """`count` different dynamically linked programs of /usr/bin (regular files, not set-uid, under 8 MB),
    spread evenly over the sorted list so that neighbours (a family of cross tools) do not dominate."""
    seen: set[str] = set()
    usable: list[str] = []
    for entry in sorted(Path("/usr/bin").iterdir()):
        try:
            st = entry.lstat()
        except OSError:
            continue
        real = os.path.realpath(entry)
        if (entry.is_symlink() or not entry.is_file() or st.st_mode & 0o6000 or st.st_size > 8 << 20
                or real in seen or not is_dynamic_elf(entry) or ldd_paths(str(entry)) is None):
            continue
        seen.add(real)
        usable.append(str(entry))
    if len(usable) < count:
        sys.exit(f"only {len(usable)} usable dynamically linked programs in /usr/bin, {count} needed")
    step = len(usable) / count
    return [usable[int(i * step)] for i in range(count)]


def image_name(i: int) -> str:
    return f"img{i:03d}"


def image_label(i: int) -> str:
    return f"//catalog/p{i % PACKAGES}:{image_name(i)}"


def group_of(i: int) -> str:
    return "etc" if i % 2 == 0 else "share"


def write_catalog(root: Path, binaries: list[str]) -> None:
    root.mkdir(parents=True)
    (root / "workspace.toml").write_text('[workspace]\nname = "catalog"\n')
    shared = root / "shared"
    shared.mkdir()
    rules = []
    for group, files in SHARED.items():
        entries = ", ".join(f'{{ src = "{name}", dest = "{dest}", mode = "0644" }}'
                            for name, (dest, _) in files.items())
        rules.append(f'[[files]]\nname = "{group}"\nfiles = [{entries}]\n')
        for name, (_, content) in files.items():
            (shared / name).write_text(content)
    (shared / "version.in").write_text(VERSION_IN)
    rules.append(f'[[genrule]]\nname = "version"\nsrcs = ["version.in"]\nouts = ["version"]\ncmd = "{VERSION_CMD}"\n')
    (shared / "BUILD.toml").write_text("\n".join(rules))
    packages: dict[int, list[str]] = {}
    for i, binary in enumerate(binaries):
        packages.setdefault(i % PACKAGES, []).append(
            f'[[image]]\nname = "{image_name(i)}"\nbinaries = ["{binary}"]\n'
            f'files = [{{ src = "//shared:{group_of(i)}", dest = "/" }}, '
            f'{{ src = "//shared:version", dest = "/etc/catalog-version", mode = "0644" }}]\n'
            f'tag = "catalog/{image_name(i)}:latest"\n')
    for p, rules_of_package in packages.items():
        pkg = root / "catalog" / f"p{p}"
        pkg.mkdir(parents=True)
        (pkg / "BUILD.toml").write_text("\n".join(rules_of_package))


def write_hand_folders(root: Path, binaries: list[str]) -> list[Path]:
    """The hand method for each image: ldd + cp -L --parents, the shared files, a FROM scratch Dockerfile."""
    folders = []
    version = VERSION_IN.upper()  # what the genrule's `tr a-z A-Z` writes
    for i, binary in enumerate(binaries):
        ctx = root / image_name(i)
        ctx.mkdir(parents=True)
        paths = ldd_paths(binary)
        assert paths is not None
        subprocess.run(["cp", "-L", "--parents", *paths, str(ctx)], check=True)
        for _, (dest, content) in SHARED[group_of(i)].items():
            target = ctx / dest.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
        (ctx / "etc" / "catalog-version").write_text(version)
        (ctx / "Dockerfile").write_text(f'FROM scratch\nCOPY . /\nENTRYPOINT ["{binary}"]\n')
        (ctx / ".dockerignore").write_text("Dockerfile\n.dockerignore\n")
        folders.append(ctx)
    return folders


# -- measuring --------------------------------------------------------------------------------------------
def child_env() -> dict[str, str]:
    """A user's shell, with bytecode caching on (benchmarks/user_env.py)."""
    return user_env()


LAST_PEAK_KIB = [0]  # peak RSS of the last minibuild process (rusage from wait4)


def minibuild(root: Path, *args: str, check: bool = True,
              bytecode: bool = True) -> tuple[float, subprocess.CompletedProcess[str]]:
    cmd = [sys.executable, "-m", "minibuild", *args]
    env = child_env() if bytecode else {**child_env(), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": ""}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        child = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        elapsed = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        proc = subprocess.CompletedProcess(cmd, os.waitstatus_to_exitcode(status), out.read().decode(),
                                           err.read().decode())
    child.returncode = proc.returncode
    LAST_PEAK_KIB[0] = usage.ru_maxrss
    if check and proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(args)}\n{proc.stderr[-3000:]}")
    return elapsed, proc


def build_json(root: Path) -> tuple[float, dict]:
    elapsed, proc = minibuild(root, "build", "//...", "--no-load", "--json")
    return elapsed, json.loads(proc.stdout)


def measure_catalog(work: Path, binaries: list[str], runs: int) -> dict[str, object]:
    n = len(binaries)
    root = work / f"catalog{n}"
    write_catalog(root, binaries)
    cold, out = build_json(root)
    cold_peak = LAST_PEAK_KIB[0]
    images = [t for t in out["targets"] if t["kind"] == "image"]
    assert len(images) == n, f"{len(images)} images built, {n} declared"
    noop = []
    noop_peak = 0
    for _ in range(runs):
        elapsed, again = build_json(root)
        assert again["actions"]["run"] == 0, again["actions"]
        noop.append(elapsed)
        noop_peak = max(noop_peak, LAST_PEAK_KIB[0])
    quiet = []
    for _ in range(runs):
        elapsed, _ = minibuild(root, "build", "//...", "--no-load", "--quiet")
        quiet.append(elapsed)
    no_bytecode = []
    for _ in range(runs):
        elapsed, _ = minibuild(root, "build", "//...", "--no-load", "--quiet", bytecode=False)
        no_bytecode.append(elapsed)

    # Change one file of the `etc` group: exactly the images using it rebuild.
    (root / "shared" / "motd").write_text("built by the catalog benchmark, edited\n")
    one_file, after = build_json(root)
    rebuilt = {t["label"] for t in after["targets"] if t["rebuilt"]}
    expected = {image_label(i) for i in range(n) if group_of(i) == "etc"}
    assert rebuilt == expected, f"rebuilt {len(rebuilt)}: extra {sorted(rebuilt - expected)[:5]}, " \
                                f"missing {sorted(expected - rebuilt)[:5]}"
    # A file changes only the layer with it and the image on top: the ELF closure stays cached.
    assert after["actions"]["run"] == 2 * len(expected), after["actions"]
    return {"n": n, "root": root, "cold": cold, "noop": noop, "noop_quiet": quiet, "noop_no_bytecode": no_bytecode,
            "one_file": one_file, "one_file_rebuilt": len(rebuilt), "one_file_actions": after["actions"]["run"],
            "actions": out["actions"]["run"], "cold_peak": cold_peak, "noop_peak": noop_peak}


def docker_build(ctx: Path, tag: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run(["docker", "build", "-q", "-t", tag, str(ctx)], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"docker build of {ctx} failed:\n{proc.stderr[-2000:]}")
    return elapsed


def measure_docker(work: Path, binaries: list[str], passes: int) -> dict[str, object]:
    folders = write_hand_folders(work / "hand", binaries)
    tags = [f"catalog-hand/{image_name(i)}:latest" for i in range(len(folders))]
    start = time.perf_counter()
    for ctx, tag in zip(folders, tags, strict=True):
        docker_build(ctx, tag)
    cold = time.perf_counter() - start
    warm = []
    for _ in range(passes):
        start = time.perf_counter()
        for ctx, tag in zip(folders, tags, strict=True):
            docker_build(ctx, tag)
        warm.append(time.perf_counter() - start)
    subprocess.run(["docker", "rmi", "-f", *tags], capture_output=True)
    return {"cold": cold, "warm": warm}


# -- profile ----------------------------------------------------------------------------------------------
def profile_noop(root: Path, work: Path) -> None:
    env = child_env()
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "minibuild", "build", "//...", "--no-load",
                           "--quiet"], cwd=root, capture_output=True, text=True, env=env)
    rows = []
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if m:
            rows.append((int(m.group(2)), int(m.group(1)), len(m.group(3)) // 2, m.group(4)))
    top_level = [r for r in rows if r[2] <= 1]
    print("\nimport time (python -X importtime), top-level imports by cumulative time:")
    print(f"  total of top-level imports: {sum(r[0] for r in top_level) / 1e3:.0f} ms")
    for cumulative, own, _, name in sorted(top_level, reverse=True)[:15]:
        print(f"  {cumulative / 1e3:8.1f} ms cumulative {own / 1e3:7.1f} ms own  {name}")
    print("  slowest single modules (own time):")
    for _, own, _, name in sorted(rows, key=lambda r: r[1], reverse=True)[:10]:
        print(f"  {own / 1e3:8.1f} ms own  {name}")

    prof = work / "noop.prof"
    subprocess.run([sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "minibuild", "build", "//...",
                    "--no-load", "--quiet"], cwd=root, capture_output=True, text=True, env=env, check=True)
    stats = pstats.Stats(str(prof))
    total = stats.total_tt  # type: ignore[attr-defined]
    print(f"\ncProfile of a no-op `build //... --no-load --quiet` ({total:.3f} s of profiled CPU time):")
    entries = stats.stats  # type: ignore[attr-defined]

    def name(func: tuple[str, int, str]) -> str:
        file, line, fn = func
        rel = os.path.relpath(file, REPO) if file.startswith(str(REPO)) else os.path.basename(file)
        return f"{rel}:{line}({fn})"

    for title, index in (("by cumulative time", 3), ("by own time", 2)):
        print(f"  top functions {title}:")
        rows = sorted(entries.items(), key=lambda kv: kv[1][index], reverse=True)
        shown = 0
        for func, (_, ncalls, tottime, cumtime, _) in rows:
            if index == 3 and func[0] == "~" and func[2].startswith("<built-in method builtins.exec"):
                continue
            print(f"    {cumtime:7.3f} cum {tottime:7.3f} own {ncalls:8d} calls  {name(func)}")
            shown += 1
            if shown == 18:
                break


# -- main ---------------------------------------------------------------------------------------------------
def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--runs", type=int, default=5, help="no-op rebuilds timed (median)")
    parser.add_argument("--docker-passes", type=int, default=3, help="warm passes of 50 docker builds (median)")
    parser.add_argument("--no-docker", action="store_true", help="skip the docker build side")
    parser.add_argument("--profile", action="store_true", help="profile a no-op build of the largest catalog")
    parser.add_argument("--keep", action="store_true", help="keep the generated workspaces (path printed)")
    args = parser.parse_args()

    binaries = pick_binaries(max(args.sizes))
    work = Path(tempfile.mkdtemp(prefix="minibuild-catalog-"))
    print(f"{len(binaries)} programs from /usr/bin, e.g. {', '.join(os.path.basename(b) for b in binaries[:6])}; "
          f"{os.cpu_count()} cores; python {sys.version.split()[0]}")
    results = []
    compile_minibuild(sys.executable)
    try:
        # Untimed warm-up: the rest of the bytecode (the standard library's, in the private prefix) and the
        # programs in the page cache.
        write_catalog(work / "warm-up", binaries[:2])
        minibuild(work / "warm-up", "build", "//...", "--no-load", "--quiet")
        for n in sorted(args.sizes):
            r = measure_catalog(work, binaries[:n], args.runs)
            results.append(r)
            print(f"\ncatalog of {n} images ({r['actions']} actions)")
            print(f"  cold build            {r['cold']:8.2f} s")
            print(f"  no-op rebuild --json  {median(r['noop']):8.3f} s  median of {len(r['noop'])} "
                  f"(min {min(r['noop']):.3f}, max {max(r['noop']):.3f})")
            print(f"  no-op rebuild --quiet {median(r['noop_quiet']):8.3f} s  median of {len(r['noop_quiet'])}")
            print(f"  no-op, no .pyc files  {median(r['noop_no_bytecode']):8.3f} s  (PYTHONDONTWRITEBYTECODE=1: "
                  "every minibuild module compiled at start-up)")
            print(f"  peak memory (max RSS) {r['cold_peak'] / 1024:8.0f} MiB cold, "
                  f"{r['noop_peak'] / 1024:.0f} MiB no-op")
            print(f"  one shared file       {r['one_file']:8.2f} s  ({r['one_file_rebuilt']} images rebuilt, "
                  f"{r['one_file_actions']} actions, exactly the images using the group)")
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        print(f"\npeak memory of a minibuild process: {peak / 1024:.0f} MiB (max RSS, RUSAGE_CHILDREN)")

        largest = results[-1]
        goal = median(largest["noop"])  # type: ignore[arg-type]
        print(f"goal (issue 17): no-op rebuild of {largest['n']} images in 0.25 s: {goal:.3f} s "
              f"-> {'met' if goal <= 0.25 else 'NOT met'}")

        if not args.no_docker:
            d = measure_docker(work, binaries[:DOCKER_IMAGES], args.docker_passes)
            warm = median(d["warm"])  # type: ignore[arg-type]
            print(f"\ndocker build of the same {DOCKER_IMAGES} images (hand method, FROM scratch)")
            print(f"  first pass (cold cache)  {d['cold']:8.2f} s")
            print(f"  warm pass                {warm:8.2f} s  median of {len(d['warm'])}")
            mb50 = next((r for r in results if r["n"] == DOCKER_IMAGES), None)
            if mb50 is not None:
                noop50 = median(mb50["noop"])  # type: ignore[arg-type]
                ratio = warm / noop50
                print(f"  minibuild no-op of {DOCKER_IMAGES}: {noop50:.3f} s -> {ratio:.1f}x faster than warm docker "
                      f"build (goal >= 20x: {'met' if ratio >= 20 else 'NOT met'})")
                print(f"  minibuild cold of {DOCKER_IMAGES}:  {mb50['cold']:.2f} s vs docker first pass "
                      f"{d['cold']:.2f} s")

        if args.profile:
            profile_noop(largest["root"], work)  # type: ignore[arg-type]
    finally:
        if args.keep:
            print(f"\nworkspaces kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
