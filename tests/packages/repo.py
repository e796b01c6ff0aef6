"""A real Debian repository on 127.0.0.1, made by the tests: real `.deb` files (`apt-get download`) and
synthetic ones (`dpkg-deb --build`), indexed by `dpkg-scanpackages`, a Release by `apt-ftparchive`, an
InRelease clear-signed by a throwaway gpg key, served by python's http.server with faults on demand."""

from __future__ import annotations

import gzip
import http.server
import lzma
import os
import shutil
import socketserver
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SUITE = "mbtest"
GPG_KEY_NAME = "minibuild test archive <archive@example.invalid>"


def run(*args: str | os.PathLike[str], cwd: Path | None = None, **kwargs: Any) -> str:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, **kwargs)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}")
    return proc.stdout


def apt_download(names: list[str], dest: Path) -> list[Path]:
    """`apt-get download` of the host's candidate versions (after `apt-get update` if the lists lack them)."""
    dest.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["apt-get", "download", *names], cwd=dest, capture_output=True, text=True)
    if proc.returncode != 0:
        run("apt-get", "update", "-q")
        run("apt-get", "download", *names, cwd=dest)
    return sorted(dest.glob("*.deb"))


@dataclass
class Synthetic:
    """A package built by dpkg-deb: control fields and files."""

    name: str
    version: str = "1.0"
    arch: str = "amd64"
    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)  # path -> content
    modes: dict[str, int] = field(default_factory=dict)
    symlinks: dict[str, str] = field(default_factory=dict)  # path -> target
    hardlinks: dict[str, str] = field(default_factory=dict)  # path -> existing path of `files`
    dirs: dict[str, int] = field(default_factory=dict)  # empty directories -> mode
    compression: str = "xz"

    def build(self, out: Path) -> Path:
        stage = out / f"stage-{self.name}-{self.version}-{self.arch}"
        shutil.rmtree(stage, ignore_errors=True)
        (stage / "DEBIAN").mkdir(parents=True)
        control = {"Package": self.name, "Version": self.version, "Architecture": self.arch,
                   "Maintainer": "minibuild tests <tests@example.invalid>", "Priority": "optional",
                   "Description": f"synthetic package {self.name}", **self.fields}
        (stage / "DEBIAN" / "control").write_text("".join(f"{k}: {v}\n" for k, v in control.items()))
        for path, data in self.files.items():
            target = stage / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            target.chmod(self.modes.get(path, 0o644))
        for path, mode in self.dirs.items():
            (stage / path.lstrip("/")).mkdir(parents=True, exist_ok=True)
            (stage / path.lstrip("/")).chmod(mode)
        for path, existing in self.hardlinks.items():
            os.link(stage / existing.lstrip("/"), stage / path.lstrip("/"))
        for path, target_text in self.symlinks.items():
            link = stage / path.lstrip("/")
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(target_text)
        deb = out / f"{self.name}_{self.version}_{self.arch}.deb"
        run("dpkg-deb", "--root-owner-group", f"-Z{self.compression}", "--build", stage, deb)
        shutil.rmtree(stage)
        return deb


class _Handler(http.server.SimpleHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.server.requests.append(self.path)
        faults = self.server.faults
        for suffix, left in list(faults.get("fail", {}).items()):
            if self.path.endswith(suffix) and left > 0:
                faults["fail"][suffix] = left - 1
                self.send_error(503, "injected failure")
                return
        for suffix, cut in faults.get("cut", {}).items():
            if self.path.endswith(suffix):
                data = (Path(self.directory) / self.path.lstrip("/")).read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[:cut])
                self.wfile.flush()
                self.close_connection = True
                return
        super().do_GET()


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    requests: list[str]
    faults: dict[str, dict[str, int]]


class Repo:
    """A signed repository under `root`, served at `url` once `serve()` is called."""

    def __init__(self, root: Path, gpg_home: Path, archs: tuple[str, ...] = ("amd64",)) -> None:
        self.root = root
        self.gpg_home = gpg_home
        self.archs = archs
        self.pool = root / "pool" / "main"
        self.pool.mkdir(parents=True, exist_ok=True)
        self.server: _Server | None = None

    @property
    def keyring(self) -> Path:
        return self.gpg_home / "archive.gpg"

    def add(self, *debs: Path) -> None:
        for deb in debs:
            shutil.copy(deb, self.pool / deb.name)

    def publish(self, sign: bool = True, signer: Path | None = None) -> None:
        """Packages (plain, .xz, .gz) per architecture, Release by apt-ftparchive, InRelease signed."""
        dists = self.root / "dists" / SUITE
        shutil.rmtree(dists, ignore_errors=True)
        for arch in self.archs:
            directory = dists / "main" / f"binary-{arch}"
            directory.mkdir(parents=True)
            text = run("dpkg-scanpackages", "-m", "-a", arch, "pool", "/dev/null", cwd=self.root)
            (directory / "Packages").write_text(text)
            (directory / "Packages.xz").write_bytes(lzma.compress(text.encode()))
            (directory / "Packages.gz").write_bytes(gzip.compress(text.encode(), mtime=0))
            contents = run("apt-ftparchive", "contents", "-a", arch, "pool", cwd=self.root)
            (dists / "main" / f"Contents-{arch}.gz").write_bytes(gzip.compress(contents.encode(), mtime=0))
        release = run("apt-ftparchive", "-o", f"APT::FTPArchive::Release::Suite={SUITE}",
                      "-o", f"APT::FTPArchive::Release::Codename={SUITE}",
                      "-o", f"APT::FTPArchive::Release::Architectures={' '.join(self.archs)}",
                      "-o", "APT::FTPArchive::Release::Components=main", "release", dists)
        (dists / "Release").write_text(release)
        if sign:  # by the archive's key, or by the only key of `signer`
            who = ["--local-user", GPG_KEY_NAME] if signer is None else []
            run("gpg", "--homedir", signer or self.gpg_home, "--batch", "--yes", *who,
                "--clearsign", "-o", dists / "InRelease", dists / "Release")

    def serve(self) -> str:
        handler = lambda *a, **k: _Handler(*a, directory=str(self.root), **k)  # noqa: E731
        self.server = _Server(("127.0.0.1", 0), handler)
        self.server.requests = []
        self.server.faults = {}
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self.url

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def make_key(home: Path, name: str = GPG_KEY_NAME) -> Path:
    """A throwaway signing key in `home`; its public key exported as a binary keyring `home/archive.gpg`."""
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    run("gpg", "--homedir", home, "--batch", "--passphrase", "", "--quick-gen-key", name, "ed25519", "sign", "never")
    keyring = home / "archive.gpg"
    keyring.write_bytes(subprocess.run(["gpg", "--homedir", str(home), "--export", name], capture_output=True,
                                       check=True).stdout)
    return keyring


class Apt:
    """apt-get against the repository alone (its own state directories, an empty dpkg status): what apt would
    install for some packages on an empty system, `--no-install-recommends`, signature checked by apt."""

    def __init__(self, repo: Repo, home: Path, arch: str = "amd64") -> None:
        self.home = home
        etc = home / "etc"
        for d in (etc / "sources.list.d", etc / "preferences.d", etc / "apt.conf.d", home / "lists" / "partial",
                  home / "archives" / "partial"):
            d.mkdir(parents=True, exist_ok=True)
        (home / "status").write_text("")
        (etc / "sources.list").write_text(f"deb [signed-by={repo.keyring}] {repo.url} {SUITE} main\n")
        self.options = [
            "-o", f"Dir::State::Lists={home / 'lists'}", "-o", f"Dir::State::status={home / 'status'}",
            "-o", f"Dir::Cache={home}", "-o", f"Dir::Cache::Archives={home / 'archives'}",
            "-o", f"Dir::Etc::SourceList={etc / 'sources.list'}",
            "-o", f"Dir::Etc::SourceParts={etc / 'sources.list.d'}",
            "-o", f"Dir::Etc::Parts={etc / 'apt.conf.d'}", "-o", f"Dir::Etc::Preferences={etc / 'preferences'}",
            "-o", f"Dir::Etc::PreferencesParts={etc / 'preferences.d'}", "-o", f"APT::Architecture={arch}",
            "-o", f"APT::Architectures={arch}", "-o", "Debug::NoLocking=1", "-o", "APT::Sandbox::User=root",
        ]
        run("apt-get", *self.options, "update")

    def install(self, packages: list[str]) -> dict[str, str] | str:
        """{name: version} apt would install, or apt's complaint when it cannot."""
        proc = subprocess.run(["apt-get", *self.options, "install", "-s", "--no-install-recommends", *packages],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            return proc.stdout + proc.stderr
        found = {}
        for line in proc.stdout.splitlines():
            if line.startswith("Inst "):
                name, version = line.split()[1], line.split("(", 1)[1].split()[0]
                found[name] = version
        return found
