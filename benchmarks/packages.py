"""Package sysroots: the 35-image catalog built from locked Debian packages, side by side with the same images
built from the host sysroot, in one run.

On fresh copies of examples/catalog-bookworm (package sysroot, its minibuild.lock) and examples/catalog (host
sysroot, `/`), each command run as a user runs it (`python -m minibuild ...`, start-up included):

  lock        `lock --update` in a copy with an empty cache: InRelease (gpgv), the Packages indices of amd64 and
              arm64, resolution (the copy's own lock is overwritten; the example's is not touched)
  cold        `build //... --no-load` on an empty cache: the .deb files fetched, unpacked, 35 images built
  warm        the same again, nothing changed
  host cold   `build //... --no-load` of examples/catalog on an empty cache; host warm: again

Then bytes downloaded (the indices and .deb files now in the package copy's store), unique bytes stored
(`minibuild size --json`: distinct compressed layers), and each image's uncompressed size against the host-built
image of the same programs. Goal (issue 13): every image within 1% of its host-sysroot twin. The host's programs
must be those of the locked suite for that to hold (a Debian 12 machine after scripts/test.sh's apt installs).

    python benchmarks/packages.py [--runs 3] [--keep]
"""

from __future__ import annotations

import argparse
import json
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

PKG_EXAMPLE = REPO / "examples" / "catalog-bookworm"
HOST_EXAMPLE = REPO / "examples" / "catalog"
GOAL = 0.01


def minibuild(cwd: Path, *args: str) -> tuple[float, str]:
    env = user_env()
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "minibuild", *args], cwd=cwd, env=env, capture_output=True,
                          text=True)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit(f"`minibuild {' '.join(args)}` failed in {cwd}:\n{proc.stderr[-3000:]}")
    return seconds, proc.stdout


def fresh_copy(example: Path, dest: Path) -> Path:
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(example, dest, symlinks=False, ignore=shutil.ignore_patterns(".minibuild"))
    return dest


def blob_bytes(ws: Path, only: set[str] | None = None) -> int:
    """Bytes in the copy's content-addressed store (only the blobs named in `only`, if given)."""
    blobs = (ws / ".minibuild" / "cache" / "cas" / "sha256").glob("*/*")
    return sum(b.stat().st_size for b in blobs if only is None or b.name in only)


def deb_digests(ws: Path) -> set[str]:
    lock = json.loads((ws / "minibuild.lock").read_text())
    return {p["sha256"] for s in lock["sysroots"].values() for ps in s["resolved"].values() for p in ps}


def sizes(ws: Path) -> dict[str, dict]:
    _, out = minibuild(ws, "size", "//...", "--json")
    return json.loads(out)


def run_once(base: Path) -> dict[str, float | int]:
    pkg = fresh_copy(PKG_EXAMPLE, base / "pkg")
    lock_s, _ = minibuild(pkg, "lock", "--update")
    indices = blob_bytes(pkg)  # all `lock` stores is the indices
    pkg = fresh_copy(PKG_EXAMPLE, base / "pkg")  # the example's lock, and a cold cache again
    cold_s, _ = minibuild(pkg, "build", "//...", "--no-load", "--quiet")
    downloaded = blob_bytes(pkg, deb_digests(pkg))
    warm_s, _ = minibuild(pkg, "build", "//...", "--no-load", "--quiet")
    host = fresh_copy(HOST_EXAMPLE, base / "host")
    host_cold_s, _ = minibuild(host, "build", "//...", "--no-load", "--quiet")
    host_warm_s, _ = minibuild(host, "build", "//...", "--no-load", "--quiet")
    return {"lock": lock_s, "cold": cold_s, "warm": warm_s, "host_cold": host_cold_s, "host_warm": host_warm_s,
            "index_bytes": indices, "deb_bytes": downloaded}


def compare(base: Path) -> list[tuple[str, int, int, float]]:
    pkg, host = sizes(base / "pkg"), sizes(base / "host")
    by_label = {i["label"]: i for i in host["images"]}
    rows = []
    for image in pkg["images"]:
        twin = by_label[image["label"]]
        rows.append((image["label"], image["bytes"], twin["bytes"], (image["bytes"] - twin["bytes"]) / twin["bytes"]))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the copies (their path is printed)")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="minibuild-packages-bench-"))
    compile_minibuild(sys.executable)
    runs = [run_once(base) for _ in range(args.runs)]
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    rows = compare(base)
    pkg_total, host_total = sizes(base / "pkg")["total"], sizes(base / "host")["total"]
    print(f"{args.runs} runs, medians; {len(rows)} images")
    print(f"{'':34} {'package sysroot':>16} {'host sysroot':>14}")
    print(f"{'lock --update (cold cache)':34} {med['lock']:>15.2f}s {'':>14}")
    print(f"{'cold build, --no-load':34} {med['cold']:>15.2f}s {med['host_cold']:>13.2f}s")
    print(f"{'warm build (no-op), --no-load':34} {med['warm']:>15.2f}s {med['host_warm']:>13.2f}s")
    print(f"{'downloaded by lock (indices)':34} {med['index_bytes']:>16,}")
    print(f"{'downloaded by build (.deb)':34} {med['deb_bytes']:>16,}")
    print(f"{'sum of image sizes, compressed':34} {pkg_total['sum_bytes']:>16,} {host_total['sum_bytes']:>14,}")
    print(f"{'unique bytes stored (layers)':34} {pkg_total['unique_bytes']:>16,} {host_total['unique_bytes']:>14,}")
    print(f"{'sum of image sizes, uncompressed':34} {pkg_total['uncompressed_bytes']:>16,} "
          f"{host_total['uncompressed_bytes']:>14,}")
    print()
    print(f"{'image':24} {'package':>12} {'host':>12} {'diff':>8}")
    for label, mine, theirs, diff in sorted(rows, key=lambda r: -abs(r[3])):
        print(f"{label:24} {mine:>12,} {theirs:>12,} {diff:>+8.2%}")
    within = sum(1 for r in rows if abs(r[3]) <= GOAL)
    print(f"\nwithin {GOAL:.0%} of the host-sysroot image: {within} of {len(rows)}")
    if args.keep:
        print(f"copies kept in {base}")
    else:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
