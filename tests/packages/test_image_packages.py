"""`packages` on a package sysroot of the loopback repository: the image holds what the package's `.deb` ships
(`dpkg-deb -c`: files, links, directories, empty ones too), without documentation, each file marked `package: NAME`
(docs/runtime.md, "packages")."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import run_cli
from tests.packages.repo import Synthetic

MERGED = ("/bin/", "/sbin/", "/lib/", "/lib64/")
DOCS = ("/usr/share/doc/", "/usr/share/man/", "/usr/share/info/", "/usr/share/locale/")


def _shipped(deb: Path) -> dict[str, str]:
    """{path in the image: `ls -l` mode string of `dpkg-deb -c`}: merged /usr applied, as the unpacked sysroot has
    it."""
    out = {}
    for line in subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True,
                               check=True).stdout.splitlines():
        mode, name = line.split()[0], line.split(None, 5)[5].split(" -> ")[0].split(" link to ")[0]
        path = "/" + name.lstrip("./").rstrip("/")
        if path != "/":
            out["/usr" + path if path.startswith(MERGED) else path] = mode
    return out


def _deb(debs: list[Path], name: str) -> Path:
    return next(d for d in debs if d.name.startswith(name + "_"))


def test_the_image_holds_what_the_deb_ships(pkg_ws, debs, repo, tmp_path):
    # A package with empty directories (a server's log and state directories are such)
    empty = Synthetic("syn-dirs", files={"/etc/syn-dirs/conf": b"x\n"},
                      dirs={"/var/lib/syn-dirs": 0o750, "/var/log/syn-dirs": 0o755}).build(tmp_path)
    repo.add(empty)
    repo.publish()
    debs = [*debs, empty]
    pkg_ws.write(["hello", "syn-files", "syn-dirs"], '[[image]]\nname = "p"\nsysroot = "test"\n'
                 'packages = ["hello", { name = "syn-files", docs = true }, "syn-dirs"]\n')
    assert run_cli("lock", cwd=pkg_ws.root).returncode == 0
    r = run_cli("build", "//images:p", "--no-load", cwd=pkg_ws.root)
    assert r.returncode == 0, r.stderr
    summary = json.loads((pkg_ws.root / ".minibuild/out/images/p/summary.json").read_text())
    files = {f["path"]: f for f in summary["files"]}
    for package in ("hello", "syn-files", "syn-dirs"):
        shipped = _shipped(_deb(debs, package))
        docs = [p for p in shipped if (p + "/").startswith(DOCS)]
        if package == "hello":
            assert docs and not any(p in files for p in docs), [p for p in docs if p in files]
        for path, mode in shipped.items():
            if (path + "/").startswith(DOCS) and package == "hello" or path in ("/bin", "/lib", "/sbin"):
                continue  # (the merged-/usr links stand for those)
            assert path in files, (package, path)
            want = {"-": "file", "l": "symlink", "h": "file", "d": "dir"}[mode[0]]
            assert files[path]["kind"] == want, (path, files[path])
            if want != "symlink":  # rwx bits as the .deb has them (setuid is dropped)
                bits = sum(1 << (8 - i) for i, c in enumerate(mode[1:10]) if c not in "-ST")
                assert files[path]["mode"] & 0o777 == bits, (path, mode, oct(files[path]["mode"]))
            # (a directory several packages ship says the first of them)
            assert files[path]["reason"] == f"package: {package}" or want == "dir", (path, files[path])
    # hello's closure came along (the real loader's libc), and the empty directories a .deb ships
    assert "/usr/lib/x86_64-linux-gnu/libc.so.6" in files and files["/var/lib/syn-dirs"]["mode"] == 0o750
    # a link that leads to another file of the sysroot brings it: /usr/share/syn/abs -> /lib/syn/data.txt
    assert files["/usr/share/syn/abs"]["kind"] == "symlink" and "/usr/lib/syn/data.txt" in files


def test_a_package_the_lock_lacks_is_exit_2_with_a_hint(pkg_ws):
    pkg_ws.write(["hello"], '[[image]]\nname = "p"\nsysroot = "test"\npackages = ["helo"]\n')
    assert run_cli("lock", cwd=pkg_ws.root).returncode == 0
    r = run_cli("build", "//images:p", "--no-load", cwd=pkg_ws.root)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "`packages` names `helo`, which is not in package sysroot `test` (amd64)" in r.stderr, r.stderr
    assert "close names: `hello`" in r.stderr and "add `helo` to `packages` of `[sysroots.test]`" in r.stderr
