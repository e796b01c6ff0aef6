"""`minibuild diff`: against the previous build, a recorded digest, and OCI layouts."""

from __future__ import annotations

from tests.conftest import run_cli


def _image(workspace, config: str, extra: str = "") -> None:
    workspace.write("img/BUILD.toml", '[[image]]\nname = "app"\nbinaries = ["/bin/bash"]\n'
                    f'files = [{{ src = "app.conf", dest = "/etc/app.conf" }}{extra}]\n')
    workspace.write("img/app.conf", config)


def test_diff_against_previous_build(workspace, cli):
    _image(workspace, "small\n")
    first = cli("diff", "//img:app", "--json", cwd=workspace.root)
    assert first.returncode == 2 and "no earlier build" in first.stderr, first.stderr  # the first build is recorded
    _image(workspace, "a much larger configuration file\n", ', { src = "extra.txt", dest = "/etc/extra.txt" }')
    workspace.write("img/extra.txt", "x" * 100)
    r = cli("diff", "//img:app", "--json", cwd=workspace.root)
    assert r.returncode == 0, r.stderr
    report = r.json()
    assert report["added"] == [{"path": "/etc/extra.txt", "kind": "file", "size": 100}]
    assert report["removed"] == []
    [changed] = report["changed"]
    assert changed["path"] == "/etc/app.conf" and changed["before"] == 6 and changed["after"] == 33
    assert changed["delta"] == 27 and report["totals"]["grown"] == 1
    assert report["totals"]["delta_bytes"] == 127
    old_digest = report["a"]["digest"]
    # Shrink it back: the previous build is now the second one; --against reaches the first by digest prefix.
    _image(workspace, "small\n")
    r = cli("diff", "//img:app", "--json", cwd=workspace.root)
    assert r.returncode == 0, r.stderr
    assert r.json()["removed"] == [{"path": "/etc/extra.txt", "kind": "file", "size": 100}]
    assert r.json()["totals"]["shrunk"] == 1
    r = cli("diff", "//img:app", "--against", old_digest.split(":")[1][:12], "--json", cwd=workspace.root)
    assert r.returncode == 0, r.stderr
    assert r.json()["a"]["digest"] == old_digest
    assert not (r.json()["added"] or r.json()["removed"] or r.json()["changed"])  # same content as the first
    r = cli("diff", "//img:app", cwd=workspace.root)  # the table
    assert r.returncode == 0 and "/etc/extra.txt" in r.stderr and "1 removed" in r.stderr, r.stderr


def test_layouts_read_back_as_the_build_describes_them(catalog):
    root, _ = catalog
    # The layout's tar members, hashed here, against the engine's own summary: nothing differs.
    r = run_cli("diff", ".minibuild/out/text/perl/oci", "//text:perl", "--json", cwd=root)
    assert r.returncode == 0, r.stderr
    report = r.json()
    assert not (report["added"] or report["removed"] or report["changed"]), report
    assert report["totals"]["bytes_before"] == report["totals"]["bytes_after"] > 0
    r = run_cli("diff", ".minibuild/out/shells/bash/oci", ".minibuild/out/shells/dash/oci", "--json", cwd=root)
    assert r.returncode == 0, r.stderr
    report = r.json()
    assert {f["path"] for f in report["added"]} == {"/usr/bin/dash"}
    assert "/usr/bin/bash" in {f["path"] for f in report["removed"]}
    assert "/usr/lib/x86_64-linux-gnu/libc.so.6" not in {f["path"] for f in report["changed"]}
    r = run_cli("diff", "//shells:bash", "--against", ".minibuild/out/shells/dash/oci", cwd=root)
    assert r.returncode == 0 and "/usr/bin/dash" in r.stderr, r.stderr
