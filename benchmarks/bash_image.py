"""minibuild versus the hand method for the bash image, side by side in one run.

Hand method: `ldd /bin/bash`, `cp -L --parents` the binary, its libraries and the loader into an empty
folder, `FROM scratch` + `COPY . /`, `docker build --no-cache`, `docker push`.
minibuild: `minibuild build //images:bash` from a cold cache (which also loads it into Docker), then
`minibuild push`.

Needs a Docker engine and a registry on 127.0.0.1:5000 (`bash scripts/test.sh --setup-only` starts both).
Prints medians of N runs, the ratios, and the bytes of each image.

    python benchmarks/bash_image.py [--runs 5] [--registry 127.0.0.1:5000]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.user_env import user_env  # noqa: E402 - after the path is set


def timed(cmd: list[str], cwd: Path | None = None) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=user_env())
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return elapsed, proc.stdout


def hand_method(work: Path, registry: str, run: int) -> dict[str, float]:
    """ldd + cp + docker build + docker push, timed as a person would run them."""
    root = work / f"hand{run}"
    root.mkdir()
    start = time.perf_counter()
    ldd = subprocess.run(["ldd", "/bin/bash"], capture_output=True, text=True, check=True).stdout
    paths = ["/bin/bash", *re.findall(r"(/\S+) \(0x", ldd)]
    subprocess.run(["cp", "-L", "--parents", *paths, str(root)], check=True)
    (root / "Dockerfile").write_text('FROM scratch\nCOPY . /\nENTRYPOINT ["/bin/bash"]\n')
    (root / ".dockerignore").write_text("Dockerfile\n")
    build_s, _ = timed(["docker", "build", "--no-cache", "-q", "-t", f"{registry}/hand/bash:{run}", str(root)])
    total_build = time.perf_counter() - start
    push_s, _ = timed(["docker", "push", "-q", f"{registry}/hand/bash:{run}"])
    return {"build": total_build, "push": push_s}


def minibuild_method(work: Path, registry: str, run: int) -> dict[str, float]:
    ws = work / f"mb{run}"
    shutil.copytree(REPO / "images", ws / "images")
    shutil.copy(REPO / "workspace.toml", ws / "workspace.toml")
    mb = [sys.executable, "-m", "minibuild"]
    build_s, _ = timed([*mb, "build", "//images:bash", "--quiet"], cwd=ws)
    push_s, _ = timed([*mb, "push", "//images:bash", "--to", f"{registry}/mb/bash:{run}"], cwd=ws)
    return {"build": build_s, "push": push_s}


def sizes(registry: str, work: Path) -> dict[str, int]:
    hand = int(subprocess.run(["docker", "image", "inspect", "--format", "{{.Size}}", f"{registry}/hand/bash:0"],
                              capture_output=True, text=True, check=True).stdout)
    mb = json.loads(subprocess.run([sys.executable, "-m", "minibuild", "build", "//images:bash", "--json", "--no-load"],
                                   cwd=work / "mb0", capture_output=True, text=True, check=True).stdout)
    target = mb["targets"][0]
    return {"hand": hand, "minibuild": target["size"], "minibuild_compressed": target["compressed_size"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--registry", default="127.0.0.1:5000")
    args = ap.parse_args()
    results: dict[str, list[dict[str, float]]] = {"hand": [], "minibuild": []}
    # Compiled once, as an installed minibuild is, so no timed run pays for compiling (benchmarks/user_env.py).
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "minibuild"), str(REPO / "rules")],
                   env=user_env(), check=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for run in range(args.runs):
            # Interleaved, so both see the same machine state.
            results["hand"].append(hand_method(work, args.registry, run))
            results["minibuild"].append(minibuild_method(work, args.registry, run))
        size = sizes(args.registry, work)
    med = {m: {k: statistics.median(r[k] for r in rs) for k in ("build", "push")} for m, rs in results.items()}
    print(f"bash image, {args.runs} runs each, medians (seconds):")
    print(f"  {'':28}{'build':>10}{'push':>10}{'total':>10}")
    for m in ("hand", "minibuild"):
        b, p = med[m]["build"], med[m]["push"]
        label = "hand (ldd+cp+docker build)" if m == "hand" else "minibuild (cold cache)"
        print(f"  {label:28}{b:10.3f}{p:10.3f}{b + p:10.3f}")
    ratio_b = med["hand"]["build"] / med["minibuild"]["build"]
    ratio_t = (med["hand"]["build"] + med["hand"]["push"]) / (med["minibuild"]["build"] + med["minibuild"]["push"])
    print(f"  minibuild is {ratio_b:.1f}x faster to build, {ratio_t:.1f}x end to end (build + push)")
    print(f"  image bytes: hand {size['hand']:,}, minibuild {size['minibuild']:,} "
          f"(+{size['minibuild'] - size['hand']:,} for /etc files), minibuild compressed "
          f"{size['minibuild_compressed']:,}")


if __name__ == "__main__":
    main()
