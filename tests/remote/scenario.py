"""The team scenario, the same on every server: clone A builds and uploads; clone B, at another path with an
empty local cache and another HOME, builds the same targets without running an action and gets the same
images; then one changed source in B runs exactly the actions that depend on it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from tests.remote.workspaces import make_team_workspace, minibuild

IMAGES = 3  # hello_image (the genrule's program), img0, img1
ACTIONS = 1 + 3 * IMAGES  # the genrule; closure, layers and image of each image


def build(root: Path, url: str, home: Path, *extra: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    done = minibuild(root, "build", "//...", "--no-load", "--json", "--explain", "--remote-cache", url, *extra,
                     env={"HOME": str(home), **(env or {})})
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    out["stderr"] = done.stderr
    return out


def digests(result: dict[str, Any]) -> dict[str, str]:
    return {t["label"]: t["digest"] for t in result["targets"] if "digest" in t}


def make_clones(base: Path) -> tuple[Path, Path]:
    a = make_team_workspace(base / "alice" / "work" / "team")
    b = base / "bob" / "src" / "clone-b"
    shutil.copytree(a, b)
    return a, b


def team_scenario(base: Path, url: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Runs the scenario against the cache at `url`; returns A's and B's first build results."""
    a, b = make_clones(base)
    first = build(a, url, base / "home-a")
    assert first["actions"] == {"run": ACTIONS, "cached": 0, "remote": 0}, first["stderr"]
    assert first["bytes"]["uploaded"] > 0 and first["bytes"]["downloaded"] == 0
    assert "warning" not in first["stderr"]

    second = build(b, url, base / "home-b")
    assert second["actions"] == {"run": 0, "cached": 0, "remote": ACTIONS}, second["stderr"]
    assert second["bytes"]["downloaded"] > 0 and second["bytes"]["uploaded"] == 0
    assert digests(second) == digests(first) and len(digests(first)) == IMAGES
    assert "warning" not in second["stderr"]
    for image in ("hello_image", "img0", "img1"):  # the same bytes on disk, not only the same digests
        for name in ("image.tar", "layers.json"):
            rel = Path(".minibuild/out/app") / image / name
            assert (a / rel).read_bytes() == (b / rel).read_bytes()

    # One changed source: its genrule and the image shipping its program run again, nothing else.
    (b / "app" / "hello.c").write_text((b / "app" / "hello.c").read_text().replace("hello from", "hello again from"))
    third = build(b, url, base / "home-b")
    per_target = {t["label"]: t["actions"] for t in third["targets"]}
    assert per_target["//app:hello"] == {"run": 1, "cached": 0, "remote": 0}
    assert per_target["//app:hello_image"] == {"run": 3, "cached": 0, "remote": 0}
    assert per_target["//app:img0"] == per_target["//app:img1"] == {"run": 0, "cached": 3, "remote": 0}
    assert third["actions"] == {"run": 4, "cached": ACTIONS - 4, "remote": 0}
    assert "remote cache: no entry" in json.dumps(third["targets"])  # --explain says why no remote entry was used
    return first, second


def run_in_docker(root: Path, url: str, home: Path) -> str:
    """`minibuild run` of the genrule's image in clone B: built from the cache, loaded, run by the engine."""
    done = minibuild(root, "run", "--remote-cache", url, "//app:hello_image", env={"HOME": str(home)})
    assert done.returncode == 0, done.stderr
    return done.stdout
