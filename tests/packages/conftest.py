"""Fixtures of the package-sysroot tests: the loopback repository (repo.py) and workspaces locked against it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.packages.repo import SUITE, Repo, Synthetic, apt_download, make_key

# Real packages of the host's suite: a closed set (hello and jq need only these), small enough to fetch each run.
REAL = ["hello", "jq", "libjq1", "libonig5", "libc6", "libgcc-s1", "gcc-12-base"]

SCRIPT = b"#!/bin/sh\necho synthetic\n"


def synthetic() -> list[Synthetic]:
    """Packages for the resolver's hard cases; none of them needs a real one."""
    return [
        # alternatives, a virtual package, :any and Pre-Depends
        Synthetic("syn-app", fields={"Depends": "syn-liba (>= 2.0) | syn-libold, syn-virtual, syn-tool:any",
                                     "Pre-Depends": "syn-pre"}),
        Synthetic("syn-liba", "1.0"), Synthetic("syn-liba", "2.0"), Synthetic("syn-liba", "3.0~rc1"),
        Synthetic("syn-libold"),
        Synthetic("syn-oldonly", fields={"Depends": "syn-liba (<< 2.0)"}),
        Synthetic("syn-alt-second", fields={"Depends": "syn-absent | syn-libold"}),
        Synthetic("syn-prov-one", fields={"Provides": "syn-virtual"}),
        Synthetic("syn-tool", fields={"Multi-Arch": "allowed"}),
        Synthetic("syn-notany"),
        Synthetic("syn-needs-any", fields={"Depends": "syn-notany:any"}),
        Synthetic("syn-pre", arch="all"),
        # a missing dependency two levels down
        Synthetic("syn-top", fields={"Depends": "syn-middle"}),
        Synthetic("syn-middle", fields={"Depends": "syn-missing (>= 1)"}),
        # versioned Provides
        Synthetic("syn-vprov", fields={"Provides": "syn-vp (= 2.0)"}),
        Synthetic("syn-wants-vp", fields={"Depends": "syn-vp (>= 1.5)"}),
        Synthetic("syn-wants-vp3", fields={"Depends": "syn-vp (>= 3)"}),
        Synthetic("syn-ess", fields={"Essential": "yes"}),
        # files: merged /usr, links, every data.tar compression
        Synthetic("syn-files", files={"/bin/syn-script": SCRIPT, "/lib/syn/data.txt": b"data\n",
                                      "/usr/share/syn/one": b"same inode\n", "/usr/sbin/syn-suid": SCRIPT},
                  modes={"/bin/syn-script": 0o755, "/usr/sbin/syn-suid": 0o4755},
                  symlinks={"/usr/bin/syn-link": "syn-script", "/usr/share/syn/abs": "/lib/syn/data.txt"},
                  hardlinks={"/usr/share/syn/two": "/usr/share/syn/one"}),
        Synthetic("syn-gz", files={"/usr/share/syn/gz.txt": b"gzip\n"}, compression="gzip"),
        Synthetic("syn-zst", files={"/usr/share/syn/zst.txt": b"zstd\n"}, compression="zstd"),
    ]


@pytest.fixture(scope="session")
def debs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    base = tmp_path_factory.mktemp("debs")
    real = apt_download(REAL, base / "real")
    made = [s.build(base) for s in synthetic()]
    return real + made


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The archive's signing key and another one (for a repository signed by the wrong key)."""
    base = tmp_path_factory.mktemp("gpg")
    make_key(base / "archive")
    make_key(base / "other", "somebody else <else@example.invalid>")
    return {"archive": base / "archive", "other": base / "other"}


@pytest.fixture
def repo(tmp_path: Path, debs: list[Path], keys: dict[str, Path]) -> Iterator[Repo]:
    """A repository of this test's own (it may change or break it)."""
    r = Repo(tmp_path / "repo", keys["archive"])
    r.add(*debs)
    r.publish()
    r.serve()
    yield r
    r.stop()


@pytest.fixture(scope="session")
def shared_repo(tmp_path_factory: pytest.TempPathFactory, debs: list[Path], keys: dict[str, Path]) -> Iterator[Repo]:
    """One repository for the tests that only read it."""
    r = Repo(tmp_path_factory.mktemp("shared") / "repo", keys["archive"])
    r.add(*debs)
    r.publish()
    r.serve()
    yield r
    r.stop()


def workspace_toml(repo: Repo, packages: list[str], *, archs: tuple[str, ...] = ("amd64",), extra: str = "") -> str:
    return (f'[workspace]\nname = "pkgtest"\n\n[sysroots.test]\n'
            f'debian = {{ suite = "{SUITE}", components = ["main"], architectures = {list(archs)!r} }}\n'
            f'packages = {packages!r}\nurl = "{repo.url}"\nkeyring = "{repo.keyring}"\n{extra}').replace("'", '"')


@pytest.fixture
def pkg_ws(tmp_path: Path, repo: Repo):
    """A workspace whose sysroot `test` comes from `repo`; `write(packages, build=...)` (re)writes it."""

    class Ws:
        root = tmp_path / "ws"

        def write(self, packages: list[str], build: str | None = None, extra: str = "") -> None:
            self.root.mkdir(exist_ok=True)
            (self.root / "workspace.toml").write_text(workspace_toml(repo, packages, extra=extra))
            if build is not None:
                (self.root / "images").mkdir(exist_ok=True)
                (self.root / "images" / "BUILD.toml").write_text(build)

        def clean_cache(self) -> None:
            shutil.rmtree(self.root / ".minibuild", ignore_errors=True)

    return Ws()
