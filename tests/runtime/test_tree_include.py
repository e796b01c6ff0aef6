"""`trees` with `include`: what the image's layers hold is what GNU find selects in the sysroot (docs/runtime.md,
"trees")."""

from __future__ import annotations

import json
import subprocess
import tarfile

ZONES = "/usr/share/zoneinfo"
IMAGE = f"""
[[image]]
name = "t"
trees = [{{ src = "{ZONES}", include = ["/Europe", "/UTC", "*.tab", "/Cuba"], exclude = ["Berlin", "Europe/L*"] }}]
"""


def _layer_paths(tarball) -> dict[str, str]:
    """{absolute path: tar type} of every entry of the image's layers."""
    out = {}
    with tarfile.open(tarball) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
        for layer in manifest[0]["Layers"]:
            with tarfile.open(fileobj=outer.extractfile(layer)) as inner:
                for m in inner.getmembers():
                    out["/" + m.name.strip("/")] = "dir" if m.isdir() else "link" if m.issym() else "file"
    return out


def _find(*args: str) -> list[str]:
    return subprocess.run(["find", *args], capture_output=True, text=True, check=True).stdout.split()


def test_include_takes_what_find_selects(workspace, cli):
    workspace.write("app/BUILD.toml", IMAGE)
    r = cli("build", "//app:t", "--no-load", cwd=workspace.root)
    assert r.returncode == 0, r.stderr
    held = _layer_paths(next(workspace.root.glob("**/app/t/image.tar")))
    # What find selects: Europe (but Berlin and L*), UTC, the .tab files anywhere, the Cuba link...
    selected = set(_find(f"{ZONES}/Europe", "!", "-type", "d", "!", "-name", "Berlin", "!", "-path",
                         f"{ZONES}/Europe/L*"))
    selected |= set(_find(ZONES, "(", "-name", "*.tab", "-o", "-path", f"{ZONES}/UTC", "-o", "-path",
                          f"{ZONES}/Cuba", ")", "!", "-type", "d"))
    # ...and the file each selected link leads to (readlink -f), which the link needs.
    links = [p for p in selected if subprocess.run(["test", "-L", p]).returncode == 0]
    targets = subprocess.run(["readlink", "-f", *links], capture_output=True, text=True, check=True).stdout.split()
    expected = selected | {t for t in targets if t.startswith(ZONES + "/")}
    got = {p for p, kind in held.items() if p.startswith(ZONES + "/") and kind != "dir"}
    assert "/usr/share/zoneinfo/America/Havana" in expected and "/usr/share/zoneinfo/Asia/Tokyo" not in expected
    assert got == expected, (sorted(got - expected)[:10], sorted(expected - got)[:10])
    # Directories only on the way to what is held: no empty Asia, Africa...
    dirs = {p for p, kind in held.items() if p.startswith(ZONES + "/") and kind == "dir"}
    assert dirs == {p.rsplit("/", 1)[0] for p in got} - {ZONES}, sorted(dirs)
