"""A sysroot tree unpacked from `.deb` files, as Debian's installer lays one out, in the cache by the digests of
the packages it holds.

- merged `/usr`: `/bin`, `/sbin`, `/lib` and the architecture's extra library directories are symlinks into
  `/usr`, made first, as debootstrap's `setup_merged_usr` makes them for bookworm (the packages of bookworm do
  not ship those links; later ones ship them in base-files, which finds them already there);
- then each package's `data.tar`, in name order, through the links already in the tree (as dpkg unpacks);
- no maintainer script runs, so nothing they would make exists: no `update-alternatives` links, no
  `ld.so.cache` (docs/packages.md says what to do instead). One exception: the CA bundle, which TLS clients
  cannot do without, is made as `update-ca-certificates` makes it on a fresh install;
- setuid and setgid bits are dropped (the tree is readable by the cache's owner: it must not hand out root).

`<cache>/sysroots/<key>/` is the tree, `<key>.owners.json` maps each path to the package that shipped it and
`<key>.control.json` holds each package's `control` and `md5sums` files and the directories it ships, so that what
an image's SBOM and dpkg status (and `packages`) say of its packages never needs a `.deb` read again. The tree is
written to a temporary directory and renamed into place (the two records first), so it is whole or absent.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Sequence

from minibuild.cache import Cache
from minibuild.errors import BuildError
from minibuild.packages import deb
from minibuild.packages.lockfile import LockedPackage

TREE_VERSION = 4  # 3: the control records; 4: with the directories each package ships
# debootstrap's setup_merged_usr: the library directories linked into /usr beyond bin, sbin and lib.
MERGED_LIB_DIRS = {
    "amd64": ("lib32", "lib64", "libx32"), "i386": ("lib64", "libx32"), "mips64el": ("lib32", "lib64", "libo32"),
    "ppc64el": ("lib64",), "s390x": ("lib32",), "x32": ("lib32", "lib64", "libx32"),
}


def tree_key(arch: str, packages: Sequence[LockedPackage]) -> str:
    digests = sorted(f"{p.name} {p.architecture} {p.sha256}" for p in packages)
    text = json.dumps({"version": TREE_VERSION, "arch": arch, "debs": digests}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def tree_path(cache: Cache, key: str) -> str:
    return os.path.join(cache.root, "sysroots", key)


def ensure_tree(cache: Cache, arch: str, packages: Sequence[LockedPackage]) -> str:
    """The tree of `packages` (each already in the store by its sha256), unpacked now unless it exists."""
    key = tree_key(arch, packages)
    path = tree_path(cache, key)
    if os.path.isdir(path):
        return path
    with cache.lock("sysroot-" + key):
        if os.path.isdir(path):
            return path
        os.makedirs(os.path.dirname(path), exist_ok=True)
        work = tempfile.mkdtemp(dir=os.path.join(cache.root, "tmp"), prefix="sysroot-")
        try:
            owners, control = unpack(cache, arch, packages, work)
            for suffix, record in ((".owners.json", owners), (".control.json", control)):
                with open(path + suffix, "w", encoding="utf-8") as f:
                    json.dump(record, f, sort_keys=True, separators=(",", ":"))
            os.rename(work, path)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
    return path


def records(cache: Cache, key: str) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """What unpacking the tree `key` recorded: {path: package that shipped it}, {package: {"control": text,
    "md5sums": text}}."""
    path = tree_path(cache, key)
    with open(path + ".owners.json", encoding="utf-8") as f:
        owners = json.load(f)
    with open(path + ".control.json", encoding="utf-8") as f:
        return owners, json.load(f)


def unpack(cache: Cache, arch: str, packages: Sequence[LockedPackage],
           root: str) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """Lay out merged /usr in `root`, then unpack every package into it; {in-image path: package name} and
    {package name: its `control` and `md5sums` files}."""
    os.chmod(root, 0o755)
    for name in ("bin", "sbin", "lib", *MERGED_LIB_DIRS.get(arch, ())):
        os.makedirs(os.path.join(root, "usr", name), mode=0o755, exist_ok=True)
        os.symlink(f"usr/{name}", os.path.join(root, name))
    owners: dict[str, str] = {}
    control: dict[str, dict[str, str]] = {}
    for p in sorted(packages, key=lambda p: p.name):
        where = f"{p.deb_name}.deb"
        with open(cache.blob_path("sha256:" + p.sha256), "rb") as f:
            data = f.read()
        with deb.data_tar(data, where) as tar:
            unpacker = _Unpacker(root, p.name, owners, where)
            unpacker.run(tar)
        # The directories it ships, empty ones too (`packages` takes them as `dpkg -L` lists them), one a line.
        control[p.name] = {**deb.control_files(data, where), "dirs": "\n".join(unpacker.dirs)}
    if ca_bundle(root):
        owners[CA_BUNDLE] = "ca-certificates"
    return owners, control


CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def ca_bundle(root: str) -> bool:
    """Write the CA bundle as `update-ca-certificates` does on a fresh install (every certificate of
    /usr/share/ca-certificates enabled, listed in C-locale order, each ending in a newline), unless the tree has
    one or has no certificates. Whether it wrote one."""
    share = os.path.join(root, "usr/share/ca-certificates")
    bundle = os.path.join(root, CA_BUNDLE.lstrip("/"))
    if not os.path.isdir(share) or os.path.lexists(bundle):
        return False
    names = sorted((os.path.relpath(os.path.join(d, f), share).encode() for d, _, files in os.walk(share)
                    for f in files if f.endswith(".crt") and os.path.isfile(os.path.join(d, f))))
    if not names:
        return False
    os.makedirs(os.path.dirname(bundle), exist_ok=True)
    with open(bundle, "wb") as out:
        for name in names:
            with open(os.path.join(share, name.decode()), "rb") as f:
                data = f.read()
            out.write(data if data.endswith(b"\n") or not data else data + b"\n")
    os.chmod(bundle, 0o644)
    return True


class _Unpacker:
    def __init__(self, root: str, package: str, owners: dict[str, str], where: str) -> None:
        self.root = root
        self.package = package
        self.owners = owners
        self.where = where
        self.dirs: list[str] = []

    def host(self, path: str) -> str:
        """The host path of in-image `path` with every symlink of its parent directories resolved inside the
        tree (absolute targets restart at the tree's root; `..` stops there)."""
        parts = [p for p in path.split("/") if p and p != "."]
        resolved: list[str] = []
        hops = 0
        todo = parts[:-1]
        while todo:
            part = todo.pop(0)
            if part == "..":
                if resolved:
                    resolved.pop()
                continue
            candidate = os.path.join(self.root, *resolved, part)
            if os.path.islink(candidate):
                hops += 1
                if hops > 40:
                    raise BuildError(f"`{self.where}`: too many symlinks under `{path}`")
                target = os.readlink(candidate)
                if target.startswith("/"):
                    resolved = []
                todo = [t for t in target.split("/") if t and t != "."] + todo
                continue
            resolved.append(part)
        return os.path.join(self.root, *resolved, *parts[-1:])

    def run(self, tar: tarfile.TarFile) -> None:
        for member in tar:
            name = "/" + member.name.lstrip("./").rstrip("/") if member.name.strip("./") else "/"
            if name == "/":
                continue
            dest = self.host(name)
            if member.isdir():
                self.dirs.append(name)
                if os.path.islink(dest) and os.path.isdir(dest):
                    continue  # a link to a directory stays, as with dpkg (merged /usr)
                if not os.path.isdir(dest):
                    self._clear(dest, name)
                    os.makedirs(dest, exist_ok=True)
                os.chmod(dest, (member.mode & 0o1777) | 0o700)
                continue
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            if member.isfile():
                self._clear(dest, name)
                extracted = tar.extractfile(member)
                assert extracted is not None
                with open(dest, "wb") as out:
                    shutil.copyfileobj(extracted, out)
                os.chmod(dest, member.mode & 0o1777)  # setuid/setgid dropped
            elif member.issym():
                self._clear(dest, name)
                os.symlink(member.linkname, dest)
            elif member.islnk():
                self._clear(dest, name)
                os.link(self.host("/" + member.linkname.lstrip("./")), dest)
            else:
                continue  # devices and fifos: never in an image's files
            self.owners[name] = self.package

    def _clear(self, dest: str, name: str) -> None:
        """Make room for `name`: a file or link a package shipped before is replaced, a directory is refused."""
        try:
            st = os.lstat(dest)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            raise BuildError(f"`{self.where}` ships `{name}` where another package has a directory")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(dest)
