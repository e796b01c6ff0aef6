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


def test_bad_include_and_exclude_patterns_are_exit_2_naming_the_line_and_attribute(workspace, cli):
    for attr in ("include", "exclude"):
        for pattern in ("[", "", "../etc", "a//b", "/"):
            workspace.write("app/BUILD.toml", f'[[image]]\nname = "t"\n\ntrees = [{{ src = "{ZONES}", '
                                              f'{attr} = ["UTC", "{pattern}"] }}]\n')
            r = cli("build", "//app:t", "--no-load", cwd=workspace.root)
            assert r.returncode == 2 and "Traceback" not in r.stderr, (attr, pattern, r.stderr)
            assert f"{attr} pattern `{pattern}` must be a name" in r.stderr, (attr, pattern, r.stderr)
            assert "BUILD.toml:4" in r.stderr and "//app:t" in r.stderr, r.stderr
            assert f"attribute `trees[0].{attr}`" in r.stderr, r.stderr
    workspace.write("app/BUILD.toml", f'[[image]]\nname = "t"\ntrees = [{{ src = "{ZONES}", include = ["[A-C]*", '
                                      '"[!a-z]ST", "[]]x"] }]\n')
    r = cli("build", "//app:t", "--no-load", cwd=workspace.root)
    assert r.returncode == 0, r.stderr


def test_an_include_pattern_that_matches_nothing_warns(workspace, cli):
    workspace.write("app/BUILD.toml", f'[[image]]\nname = "t"\ntrees = [{{ src = "{ZONES}", '
                                      'include = ["/UTC", "Nowhere*"] }]\n')
    r = cli("build", "//app:t", "--no-load", cwd=workspace.root)
    assert r.returncode == 0, r.stderr
    assert f"`include` pattern `Nowhere*` of tree `{ZONES}` matches nothing" in r.stderr, r.stderr
    assert "`/UTC`" not in r.stderr, r.stderr
