"""What the cache and state-directory tests share: a small built workspace, action entries read and rewritten as an
attacker (or a damaged disk) would, knowing only the format docs/cache.md gives; the files of a built image read
from its tarball with tarfile (not through minibuild); a directory's state, to show nothing outside changed; and the
CLI run as an unprivileged user (the tests run as root in CI, which no file mode stops)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import CliResult, run_cli

BUILD = '[[image]]\nname = "b"\nbinaries = ["/bin/sh"]\nfiles = [{ src = "motd", dest = "/etc/motd" }]\n'
NOBODY = 65534


def make_workspace(root: Path, motd: str = "hello\n") -> Path:
    (root / "img").mkdir(parents=True, exist_ok=True)
    (root / "workspace.toml").write_text('[workspace]\nname = "tampered"\n')
    (root / "img" / "BUILD.toml").write_text(BUILD)
    (root / "img" / "motd").write_text(motd)
    return root


def build(root: Path, env: dict[str, str] | None = None) -> CliResult:
    return run_cli("build", "//...", "--json", "--no-load", cwd=root, env=env, timeout=300)


def no_traceback(result: CliResult | subprocess.CompletedProcess[str]) -> bool:
    return "Traceback" not in result.stderr and result.returncode != 3


# -- action entries ---------------------------------------------------------------------------------------------

def entry_paths(cache: Path) -> list[Path]:
    return sorted((cache / "ac").glob("*/*.json"))


def read_entry(path: Path) -> tuple[dict, bool]:
    """(the entry, whether it is in the checked format `{"check": sha256 of the entry's bytes, "entry": ...}`)."""
    doc = json.loads(path.read_bytes())
    if isinstance(doc, dict) and set(doc) == {"check", "entry"}:
        return doc["entry"], True
    return doc, False


def entry_bytes(entry: object, checked: bool, check: str | None = None) -> bytes:
    """`entry` as a file in the format it was read in; checked: with a checksum over its bytes (the right one, as an
    attacker can compute it, unless `check` gives another: a hand edit that left it as it was)."""
    body = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    if not checked:
        return body
    check = check or "sha256:" + hashlib.sha256(body).hexdigest()
    return b'{"check":"' + check.encode() + b'","entry":' + body + b"}"


def write_entry(path: Path, entry: object, checked: bool, check: str | None = None) -> None:
    path.write_bytes(entry_bytes(entry, checked, check))


def entry_for(cache: Path, output: str) -> Path:
    """The entry file of the action whose outputs include `output`."""
    found = [p for p in entry_paths(cache) if output in read_entry(p)[0].get("outputs", {})]
    assert len(found) == 1, (output, found)
    return found[0]


def blobs(cache: Path) -> dict[str, Path]:
    return {"sha256:" + p.name: p for p in (cache / "cas" / "sha256").glob("*/*")}


# -- images and directories ---------------------------------------------------------------------------------------

def image_files(root: Path, target: dict) -> dict[str, bytes]:
    """Path -> content of every regular file of a built image, read from its `image.tar` (docker's format)."""
    files: dict[str, bytes] = {}
    with tarfile.open(root / target["tarball"]) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
        for layer in manifest[0]["Layers"]:
            data = outer.extractfile(layer).read()  # type: ignore[union-attr]
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
                for m in tar.getmembers():
                    if m.isfile():
                        files["/" + m.name] = tar.extractfile(m).read()  # type: ignore[union-attr]
    return files


def state(path: Path) -> dict[str, tuple[int, int, int, bytes]]:
    """Every entry under `path` (links not followed): mode, size, mtime and, for a file, its bytes."""
    found = {}
    for p in [path, *sorted(path.rglob("*"))] if path.exists() or path.is_symlink() else []:
        st = p.lstat()
        data = p.read_bytes() if p.is_file() and not p.is_symlink() else os.readlink(p).encode() \
            if p.is_symlink() else b""
        found[str(p.relative_to(path))] = (st.st_mode, st.st_size, st.st_mtime_ns, data)
    return found


# -- an unprivileged user -------------------------------------------------------------------------------------------

@contextmanager
def nobody_dir() -> Iterator[Path]:
    """A directory the user `nobody` can reach (pytest's tmp_path lies below root's 0700 directory), removed after."""
    path = Path(tempfile.mkdtemp(prefix="minibuild-nobody-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for p in [path, *path.rglob("*")]:  # modes a test took away, back: so it can all go
            if not p.is_symlink():
                p.chmod(0o755)
        shutil.rmtree(path)


def give_to_nobody(path: Path) -> None:
    for p in [path, *path.rglob("*")]:
        os.lchown(p, NOBODY, NOBODY)


_OPENED: list[tuple[str, int]] = []


def _let_nobody_through(path: str) -> None:
    """Give `nobody` search (x, not read) permission on the folders above `path` that lack it, so it can run the
    checkout's interpreter when the checkout lies under a private folder (`mktemp -d`, /root); restored at exit."""
    import atexit
    import stat

    here = os.path.dirname(os.path.abspath(path))
    while here != "/":
        mode = os.stat(here).st_mode
        if not mode & stat.S_IXOTH:
            if not _OPENED:
                atexit.register(lambda: [os.chmod(d, m) for d, m in _OPENED])
            _OPENED.append((here, stat.S_IMODE(mode)))
            os.chmod(here, stat.S_IMODE(mode) | stat.S_IXOTH)
        here = os.path.dirname(here)


def as_nobody(*args: str, cwd: Path, home: Path, env: dict[str, str] | None = None) -> CliResult:
    """`python -m minibuild ARGS` as the user nobody (uid and gid 65534, no groups, no capabilities), as a user
    without root's power over file modes runs it."""
    for needed in (sys.executable, os.path.realpath(sys.executable), str(Path(__file__).resolve())):
        _let_nobody_through(needed)
    proc = subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--inh-caps=-all",
         sys.executable, "-m", "minibuild", *args],
        cwd=cwd, capture_output=True, text=True, timeout=300,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200", "HOME": str(home),
             "MINIBUILD_DEB_CACHE": str(home / "debs"), "PYTHONDONTWRITEBYTECODE": "1", **(env or {})})
    return CliResult(proc.returncode, proc.stdout, proc.stderr)
