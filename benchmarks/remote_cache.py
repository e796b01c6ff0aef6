"""examples/catalog through a shared remote cache: clone A's cold build, clone B's build from the cache, a no-op.

Side by side in one run, on copies of examples/catalog in a temporary directory, each as a user runs it
(`python -m minibuild build //... --no-load --json`, CLI start-up included), against a server started here on
127.0.0.1 (Debian's nginx with WebDAV for `http`, BuildGrid for `grpc`, Debian's docker-registry for `oci`:
`bash scripts/test.sh --setup-only` installs them; BuildGrid's `bgd` is found through $MINIBUILD_TEST_BGD):

  cold        clone A, empty local cache, empty server: every action runs here (and is uploaded)
  cold, local the same with no remote cache (what a build costs without one)
  from cache  clone B at another path, empty local cache, another HOME: every action comes from the server
  no-op       clone B again, nothing changed: every action a local hit

Medians of --runs runs (each on fresh copies and a fresh server), then bytes moved and the ratios.
Goal (issue 14): clone B's build at least 5x faster than a cold build.

    python benchmarks/remote_cache.py [--runs 3] [--protocol http|grpc|oci|all]
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

from benchmarks.user_env import user_env  # noqa: E402 - after the path is set
from tests.remote.servers import start_buildgrid, start_nginx, start_registry  # noqa: E402 - after the path is set

SERVERS = {"http": start_nginx, "grpc": start_buildgrid, "oci": start_registry}


def build(root: Path, home: Path, *args: str) -> tuple[float, dict]:
    env = user_env(HOME=str(home))
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "minibuild", "build", "//...", "--no-load", "--json", *args],
                          cwd=root, env=env, capture_output=True, text=True, timeout=1800)
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        sys.exit(f"build failed in {root}:\n{done.stderr[-3000:]}")
    return elapsed, {**json.loads(done.stdout), "stderr": done.stderr[-3000:]}


def one_run(base: Path, protocol: str) -> dict[str, float]:
    server = SERVERS[protocol](base / "server")
    try:
        a = base / "alice" / "catalog"
        b = base / "bob" / "work" / "catalog"
        local = base / "carol" / "catalog"
        for root in (a, b, local):
            shutil.copytree(REPO / "examples" / "catalog", root)
        url = ("--remote-cache", server.url)
        cold_local, _ = build(local, base / "home-c", "--no-remote-cache")
        cold, first = build(a, base / "home-a", *url)
        remote, second = build(b, base / "home-b", *url)
        noop, third = build(b, base / "home-b", *url)
        assert second["actions"]["run"] == 0, (second["actions"], second.get("stderr"))
        digests = {t["label"]: t.get("digest") for t in first["targets"]}
        assert digests == {t["label"]: t.get("digest") for t in second["targets"]}
        return {"cold": cold, "cold_local": cold_local, "remote": remote, "noop": noop,
                "actions": second["actions"]["remote"], "uploaded": first["bytes"]["uploaded"],
                "downloaded": second["bytes"]["downloaded"], "noop_run": third["actions"]["run"]}
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--protocol", choices=(*SERVERS, "all", "both"), default="all",
                        help="one server, or all of them (`both`, for http and grpc, as before `oci` came)")
    args = parser.parse_args()
    protocols = {"all": list(SERVERS), "both": ["http", "grpc"]}.get(args.protocol, [args.protocol])
    # Compiled once, as an installed minibuild is, so no timed run pays for compiling (benchmarks/user_env.py).
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "minibuild"), str(REPO / "rules")],
                   env=user_env(), check=True)
    for protocol in protocols:
        runs = []
        for i in range(args.runs):
            with tempfile.TemporaryDirectory(prefix=f"remote-bench-{protocol}-{i}-") as tmp:
                runs.append(one_run(Path(tmp), protocol))
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"\n{protocol}: examples/catalog, {int(med['actions'])} actions, medians of {args.runs} runs")
        print(f"  cold, no remote cache          {med['cold_local']:7.2f} s")
        print(f"  cold, clone A (and uploading)  {med['cold']:7.2f} s   {med['uploaded'] / 1e6:6.1f} MB uploaded")
        print(f"  clone B from the remote cache  {med['remote']:7.2f} s   {med['downloaded'] / 1e6:6.1f} MB downloaded")
        print(f"  no-op (clone B again)          {med['noop']:7.2f} s")
        ratio = med["cold_local"] / med["remote"]
        print(f"  clone B vs cold local build    {ratio:7.1f}x faster (goal 5x: {'met' if ratio >= 5 else 'NOT met'})")


if __name__ == "__main__":
    main()
