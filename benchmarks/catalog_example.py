"""examples/catalog (35 images of Debian programs): minibuild versus the hand method, side by side in one run.

On copies of examples/catalog in a temporary directory, each as a user runs it (`python -m minibuild ...`,
CLI start-up included):

  minibuild cold    `build //...` on an empty cache, loading the 35 images into Docker (as a user would);
                    and `build //... --no-load` (a fresh copy each time)
  minibuild no-op   the same again, nothing changed: with loading (every image "already loaded") and --no-load
  hand cold         for each image: `ldd` on its binaries, `cp -L --parents` of the binaries, libraries and loader
                    into a folder, a `FROM scratch` + `COPY . /` Dockerfile with the image's entrypoint and cmd,
                    `docker build --no-cache`; timed over all 35 images
  hand warm         a second pass of the 35 `docker build`s over the same folders (build cache warm)

Medians of --runs runs of each, interleaved so that both methods see the same machine state, and the ratios
(minibuild cold vs hand cold, minibuild no-op vs hand warm). Then the sizes: `minibuild size //... --json`
(compressed layer bytes: the images' sizes added up, `sum_bytes`, against the distinct layers, `unique_bytes`),
which layers the images share (from `build --json`), and what the Docker engine holds for each method
(`docker image inspect` and `docker history`: uncompressed bytes; the hand images share nothing).
Peak memory is the largest resident set of any minibuild process (the rusage of each child, from wait4).

The copies get tags of their own (`catalog-bench/<package>-<name>`, the hand images `catalog-hand/...`), so the
run neither replaces nor reuses images the engine has under the example's tags; both sets are removed at the end.
Needs a Docker engine (`bash scripts/test.sh --setup-only` starts one).

Goal (issue 8): the catalog's unique bytes at most 45% of the sum of its images' sizes (shared layers).

    python benchmarks/catalog_example.py [--runs 5] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.user_env import compile_minibuild, user_env  # noqa: E402 - after the path is set

CATALOG = REPO / "examples" / "catalog"
MB_TAG = "catalog-bench"
HAND_TAG = "catalog-hand"
GOAL = 0.45
GROUPS = {"minibuild: dynamic loader and libc": "loader + libc", "minibuild: shared libraries": "libraries",
          "minibuild: binaries and files": "binaries, files"}  # others by their history text


def group_of(created_by: str) -> str:
    return GROUPS.get(created_by) or created_by.removeprefix("minibuild: ").split(" (")[0]


@dataclass(frozen=True)
class Image:
    package: str
    name: str
    binaries: list[str]
    entrypoint: list[str]
    cmd: list[str] | None

    @property
    def label(self) -> str:
        return f"//{self.package}:{self.name}"

    def tag(self, prefix: str) -> str:
        return f"{prefix}/{self.package.replace('/', '-')}-{self.name}:latest"


def read_catalog() -> list[Image]:
    images = []
    for build in sorted(CATALOG.rglob("BUILD.toml")):
        package = build.parent.relative_to(CATALOG).as_posix()
        for t in tomllib.loads(build.read_text()).get("image", []):
            binaries = list(t["binaries"])
            entrypoint = list(t.get("entrypoint") or binaries[:1])
            images.append(Image(package, t["name"], binaries, entrypoint, t.get("cmd")))
    return images


def copy_catalog(dest: Path) -> Path:
    """examples/catalog with a `tag` of the benchmark's own on every image."""
    shutil.copytree(CATALOG, dest)
    for build in dest.rglob("BUILD.toml"):
        package = build.parent.relative_to(dest).as_posix().replace("/", "-")
        text = re.sub(r'^name = "([^"]+)"$', rf'\g<0>\ntag = "{MB_TAG}/{package}-\1:latest"', build.read_text(),
                      flags=re.M)
        build.write_text(text)
    return dest


# -- running --------------------------------------------------------------------------------------------------
def child_env() -> dict[str, str]:
    """A user's shell, with bytecode caching on (benchmarks/user_env.py)."""
    return user_env()


PEAK_KIB: dict[str, int] = {}


def minibuild(root: Path, what: str, *args: str) -> tuple[float, str]:
    """Wall time and stdout of `python -m minibuild ARGS` in `root`; its peak RSS is kept under `what`."""
    cmd = [sys.executable, "-m", "minibuild", *args]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=root, env=child_env(), stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    PEAK_KIB[what] = max(PEAK_KIB.get(what, 0), usage.ru_maxrss)
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): minibuild {' '.join(args)}\n{stderr[-3000:]}")
    return elapsed, stdout


def build_json(root: Path, what: str, *extra: str) -> tuple[float, dict]:
    elapsed, out = minibuild(root, what, "build", "//...", "--json", *extra)
    return elapsed, json.loads(out)


def docker(*args: str, check: bool = True) -> str:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        sys.exit(f"failed: docker {' '.join(args)}\n{proc.stderr[-2000:]}")
    return proc.stdout


def remove_tags(tags: list[str]) -> None:
    present = [t for t in tags
               if subprocess.run(["docker", "image", "inspect", t], capture_output=True).returncode == 0]
    if present:
        docker("rmi", *present)


# -- minibuild ------------------------------------------------------------------------------------------------
def mb_cold(work: Path, images: list[Image], run: int, load: bool) -> tuple[float, Path, dict]:
    root = copy_catalog(work / f"mb-{'load' if load else 'noload'}-{run}")
    if load:
        remove_tags([i.tag(MB_TAG) for i in images])
    elapsed, out = build_json(root, "cold" if load else "cold --no-load", *([] if load else ["--no-load"]))
    built = [t for t in out["targets"] if t["kind"] == "image"]
    assert len(built) == len(images) and out["actions"]["cached"] == 0, out["actions"]
    if load:
        assert all(t.get("loaded") == "loaded" for t in built), [(t["label"], t.get("loaded")) for t in built]
    return elapsed, root, out


def mb_noop(root: Path, images: list[Image], load: bool) -> float:
    elapsed, out = build_json(root, "no-op" if load else "no-op --no-load", *([] if load else ["--no-load"]))
    assert out["actions"]["run"] == 0, out["actions"]
    if load:
        assert all(t.get("loaded") == "already loaded" for t in out["targets"] if t["kind"] == "image")
    return elapsed


# -- the hand method --------------------------------------------------------------------------------------------
def ldd_paths(binary: str) -> list[str]:
    proc = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True)
    if "not found" in proc.stdout:
        sys.exit(f"ldd {binary}: a library is missing\n{proc.stdout}")
    return re.findall(r"(/\S+) \(0x", proc.stdout)


def hand_folder(ctx: Path, image: Image) -> None:
    """ldd, cp -L --parents of the binaries, their libraries and the loader; a FROM scratch Dockerfile."""
    paths = list(image.binaries)
    for binary in image.binaries:
        paths += [p for p in ldd_paths(binary) if p not in paths]
    ctx.mkdir(parents=True)
    subprocess.run(["cp", "-L", "--parents", *paths, str(ctx)], check=True)
    lines = ["FROM scratch", "COPY . /", f"ENTRYPOINT {json.dumps(image.entrypoint)}"]
    if image.cmd:
        lines.append(f"CMD {json.dumps(image.cmd)}")
    (ctx / "Dockerfile").write_text("\n".join(lines) + "\n")
    (ctx / ".dockerignore").write_text("Dockerfile\n.dockerignore\n")


def hand_cold(work: Path, images: list[Image], run: int) -> tuple[float, list[Path]]:
    remove_tags([i.tag(HAND_TAG) for i in images])
    root = work / f"hand-{run}"
    folders = []
    start = time.perf_counter()
    for image in images:
        ctx = root / image.tag(HAND_TAG).split("/", 1)[1].split(":")[0]
        hand_folder(ctx, image)
        docker("build", "--no-cache", "-q", "-t", image.tag(HAND_TAG), str(ctx))
        folders.append(ctx)
    return time.perf_counter() - start, folders


def hand_warm(images: list[Image], folders: list[Path]) -> float:
    start = time.perf_counter()
    for image, ctx in zip(images, folders, strict=True):
        docker("build", "-q", "-t", image.tag(HAND_TAG), str(ctx))
    return time.perf_counter() - start


# -- sizes ----------------------------------------------------------------------------------------------------------
def engine_bytes(tags: list[str]) -> tuple[int, int]:
    """Uncompressed bytes in the engine: the images' `Size` added up, and the distinct layers (by chain)."""
    total = 0
    layers: dict[tuple[str, ...], int] = {}
    for tag in tags:
        total += int(docker("image", "inspect", "--format", "{{.Size}}", tag))
        diff_ids = json.loads(docker("image", "inspect", "--format", "{{json .RootFS.Layers}}", tag))
        # `docker history` is newest first; ENTRYPOINT and CMD of a Dockerfile add rows of 0 bytes, no layer.
        sizes = [int(s) for s in docker("history", "--human=false", "--format", "{{.Size}}", tag).split()][::-1]
        if len(sizes) > len(diff_ids):
            sizes = [s for s in sizes if s > 0]
        assert len(sizes) == len(diff_ids), (tag, sizes, diff_ids)
        for i, size in enumerate(sizes):
            layers[tuple(diff_ids[:i + 1])] = size
    return total, sum(layers.values())


def layer_report(root: Path, out: dict) -> None:
    """Which layers the images share, by group, and the libraries stored in more than one libraries layer."""
    targets = [t for t in out["targets"] if t["kind"] == "image"]
    owners: dict[str, list[str]] = {}
    info: dict[str, tuple[str, int]] = {}
    for t in targets:
        for layer in t["layers"]:
            owners.setdefault(layer["digest"], []).append(t["label"])
            info[layer["digest"]] = (group_of(layer["created_by"]), layer["size"])
    print(f"\n  layers by group       {'distinct':>8} {'shared':>7} {'images':>7} {'sum of sizes':>13} "
          f"{'unique':>11}")
    for group in dict.fromkeys(g for g, _ in info.values()):
        digests = [d for d, (g, _) in info.items() if g == group]
        in_sum = sum(info[d][1] * len(owners[d]) for d in digests)
        unique = sum(info[d][1] for d in digests)
        shared = sum(1 for d in digests if len(owners[d]) > 1)
        users = sum(len(owners[d]) for d in digests)
        print(f"  {group:20} {len(digests):8d} {shared:7d} {users:7d} {mib(in_sum):>13} {mib(unique):>11}")
    for d, labels in sorted(owners.items(), key=lambda kv: -len(kv[1])):
        if len(labels) > 1:
            print(f"    {info[d][0]} layer {d[7:19]} ({mib(info[d][1])}) shared by {len(labels)}: "
                  f"{', '.join(labels) if len(labels) < 6 else f'{len(labels)} images'}")
    alone = sorted((d for d in info if len(owners[d]) == 1), key=lambda d: -info[d][1])
    print("    largest layers of one image only: "
          + ", ".join(f"{owners[d][0]} {info[d][0]} {mib(info[d][1])}" for d in alone[:6]))
    # A libraries layer is shared only by images whose library sets are identical; the same library in several
    # different sets is stored once per set.
    libs: dict[str, set[str]] = {}
    lib_size: dict[str, int] = {}
    for t in targets:
        with open(root / t["outputs"]["layers.json"], encoding="utf-8") as f:
            for layer in json.load(f)["layers"]:
                if group_of(layer["created_by"]) != "libraries":
                    continue
                for file in layer["files"]:
                    if file["kind"] == "file":
                        libs.setdefault(file["path"], set()).add(layer["digest"])
                        lib_size[file["path"]] = file["size"]
    repeated = sorted(((len(ds), p) for p, ds in libs.items() if len(ds) > 1), reverse=True)
    extra = sum((n - 1) * lib_size[p] for n, p in repeated)
    print(f"    libraries stored in more than one distinct libraries layer: {len(repeated)}, "
          f"{mib(extra)} uncompressed stored again")
    for n, path in sorted(repeated, key=lambda r: -(r[0] - 1) * lib_size[r[1]])[:6]:
        print(f"      {os.path.basename(path):28} in {n} layers, {mib(lib_size[path])} each")


ALSO = ("remote", "packages")


def other_ways(base: Path, also: list[str]) -> dict[str, float]:
    """The same catalog built the other ways (`--also`), in this run beside the rest: clone B of
    benchmarks/remote_cache.py (an empty local cache, every action from nginx on 127.0.0.1) and the cold and no-op
    builds of examples/catalog-bookworm (benchmarks/packages.py: its locked packages fetched and unpacked)."""
    got: dict[str, float] = {}
    if "remote" in also:
        from benchmarks import remote_cache

        r = remote_cache.one_run(base / "remote", "http")
        got.update({"remote": r["remote"], "remote_noop": r["noop"], "remote_cold_local": r["cold_local"]})
    if "packages" in also:
        from benchmarks import packages

        (base / "packages").mkdir(parents=True)
        p = packages.run_once(base / "packages")
        got.update({"packages": p["cold"], "packages_noop": p["warm"], "packages_host": p["host_cold"]})
    return got


def ways_table(cold: float, noop: float, hand: float, others: list[dict[str, float]]) -> None:
    """One table: the catalog from an empty cache each way, --no-load, against the hand method's cold pass."""
    m = {k: med([o[k] for o in others]) for k in others[0]}
    rows = [("host sysroot, empty cache (this run)", cold, noop)]
    if "packages" in m:
        rows.append(("package sysroot (catalog-bookworm), empty cache", m["packages"], m["packages_noop"]))
    if "remote" in m:
        rows.append(("remote cache (nginx), clone B, empty local cache", m["remote"], m["remote_noop"]))
    print(f"\nexamples/catalog each way (--no-load), medians of {len(others)}; hand method cold {hand:.2f} s")
    print(f"  {'':52} {'cold':>8} {'no-op':>8} {'vs hand cold':>13}")
    for name, c, n in rows:
        print(f"  {name:52} {c:7.2f}s {n:7.3f}s {hand / c:12.1f}x")
    if "remote" in m or "packages" in m:
        print("  (the same host-sysroot cold build timed by those scripts: "
              + ", ".join(f"{k} {m[k]:.2f} s" for k in ("remote_cold_local", "packages_host") if k in m) + ")")


def mib(n: float) -> str:
    return f"{n / 1e6:.2f} MB"


def med(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float]) -> str:
    return f"median of {len(values)} (min {min(values):.3f}, max {max(values):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each measurement (medians)")
    parser.add_argument("--keep", action="store_true", help="keep the copies and the images (path printed)")
    parser.add_argument("--also", nargs="*", choices=ALSO, default=[],
                        help="in each run, also the catalog from the remote cache (benchmarks/remote_cache.py, "
                             "nginx) and from its package sysroot (benchmarks/packages.py): one table")
    args = parser.parse_args()
    if shutil.which("docker") is None or subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        sys.exit("needs a Docker engine: bash scripts/test.sh --setup-only")

    images = read_catalog()
    engine = docker("version", "--format", "{{.Server.Version}}").strip()
    commit = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True,
                            text=True).stdout.strip() or "?"
    print(f"commit {commit}; examples/catalog: {len(images)} images; {os.cpu_count()} cores; "
          f"python {sys.version.split()[0]}; Docker Engine {engine}")
    work = Path(tempfile.mkdtemp(prefix="minibuild-catalog-example-"))
    mb_tags = [i.tag(MB_TAG) for i in images]
    hand_tags = [i.tag(HAND_TAG) for i in images]
    try:
        compile_minibuild(sys.executable)
        # Untimed warm-up: bytecode in the private prefix, the programs and libraries in the page cache.
        warm = copy_catalog(work / "warm-up")
        minibuild(warm, "warm-up", "build", "//...", "--no-load", "--quiet")
        minibuild(warm, "warm-up", "build", "//shells:dash", "--quiet")
        minibuild(warm, "warm-up", "size", "//...", "--json")

        cold_load, cold_noload, hand_c = [], [], []
        others: list[dict[str, float]] = []
        for run in range(args.runs):
            elapsed, root, out = mb_cold(work, images, run, load=True)
            cold_load.append(elapsed)
            cold_noload.append(mb_cold(work, images, run, load=False)[0])
            elapsed, folders = hand_cold(work, images, run)
            hand_c.append(elapsed)
            others.append(other_ways(work / f"also-{run}", args.also))
        noop_load, noop_noload, hand_w = [], [], []
        for _ in range(args.runs):
            noop_load.append(mb_noop(root, images, load=True))
            noop_noload.append(mb_noop(root, images, load=False))
            hand_w.append(hand_warm(images, folders))

        print(f"\nminibuild, {out['actions']['run']} actions")
        print(f"  cold build, loading into Docker   {med(cold_load):8.2f} s  {spread(cold_load)}")
        print(f"  cold build --no-load              {med(cold_noload):8.2f} s  {spread(cold_noload)}")
        print(f"  no-op rebuild (all already loaded){med(noop_load):8.3f} s  {spread(noop_load)}")
        print(f"  no-op rebuild --no-load           {med(noop_noload):8.3f} s  {spread(noop_noload)}")
        print(f"hand method (ldd, cp -L --parents, FROM scratch, docker build), {len(images)} images")
        print(f"  cold: ldd + cp + build --no-cache {med(hand_c):8.2f} s  {spread(hand_c)}")
        print(f"  warm: second pass of docker build {med(hand_w):8.2f} s  {spread(hand_w)}")
        print("ratios")
        print(f"  minibuild cold (load) vs hand cold       {med(hand_c) / med(cold_load):6.1f}x faster "
              f"(--no-load: {med(hand_c) / med(cold_noload):.1f}x)")
        print(f"  minibuild no-op (load) vs hand warm      {med(hand_w) / med(noop_load):6.1f}x faster "
              f"(--no-load: {med(hand_w) / med(noop_noload):.1f}x)")
        if args.also:
            ways_table(med(cold_noload), med(noop_noload), med(hand_c), others)
        peak = {k: v for k, v in PEAK_KIB.items() if k != "warm-up"}
        print("peak memory of a minibuild process (max RSS): "
              + ", ".join(f"{k} {v / 1024:.0f} MiB" for k, v in peak.items()))

        _, size_out = minibuild(root, "size", "size", "//...", "--json")
        total = json.loads(size_out)["total"]
        share = total["unique_bytes"] / total["sum_bytes"]
        print(f"\nsizes (minibuild size //... --json: compressed layer bytes, {total['layers']} distinct layers)")
        print(f"  sum of the {total['images']} images' sizes     {mib(total['sum_bytes']):>11}")
        print(f"  unique bytes (distinct layers) {mib(total['unique_bytes']):>11}  = {share:.1%} of the sum "
              f"(goal <= {GOAL:.0%}: {'met' if share <= GOAL else 'NOT met'})")
        layer_report(root, out)
        hand_total, hand_unique = engine_bytes(hand_tags)
        mb_total, mb_unique = engine_bytes(mb_tags)
        print("in the Docker engine (uncompressed: `docker image inspect` Size; distinct layers by chain)")
        print(f"  hand method: images added up {mib(hand_total):>11}, stored {mib(hand_unique):>11} (shares nothing)")
        print(f"  minibuild:   images added up {mib(mb_total):>11}, stored {mib(mb_unique):>11} "
              f"({mb_unique / hand_unique:.0%} of the hand method's)")
    finally:
        if args.keep:
            print(f"\ncopies kept in {work}; images tagged {MB_TAG}/* and {HAND_TAG}/*")
        else:
            remove_tags(mb_tags + hand_tags)
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
