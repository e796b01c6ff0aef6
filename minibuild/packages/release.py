"""A suite's `InRelease`: its OpenPGP signature checked with `gpgv`, then the `Release` fields apt relies on.

`gpgv` is the verifier apt itself runs. The text parsed is the one `gpgv` writes out as signed (`--output`),
never the file's own text, and a file with anything outside its one signed message is refused, so nothing
unsigned can slip in beside the signature.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

from minibuild.errors import BuildError
from minibuild.packages import control

DEFAULT_KEYRINGS = ("/usr/share/keyrings/debian-archive-keyring.gpg",)
_BEGIN = b"-----BEGIN PGP SIGNED MESSAGE-----"
_END = b"-----END PGP SIGNATURE-----"


@dataclass(frozen=True)
class IndexFile:
    path: str  # relative to dists/<suite>/
    sha256: str
    size: int


@dataclass(frozen=True)
class Release:
    suite: str
    codename: str
    date: str
    valid_until: str | None
    architectures: tuple[str, ...]
    components: tuple[str, ...]
    acquire_by_hash: bool
    files: dict[str, IndexFile] = field(hash=False)

    def index(self, directory: str) -> IndexFile | None:
        """The best compressed form of `<directory>/Packages` the Release lists: xz, then gz, then plain."""
        return self.best(f"{directory}/Packages")

    def best(self, path: str) -> IndexFile | None:
        """The smallest form of an index file the Release lists: `.xz`, then `.gz`, then plain."""
        for suffix in (".xz", ".gz", ""):
            found = self.files.get(path + suffix)
            if found is not None:
                return found
        return None


def verify(data: bytes, keyrings: tuple[str, ...], where: str) -> bytes:
    """The signed text of an `InRelease` file, once `gpgv` has found a good signature by a key of `keyrings`.

    BuildError (nothing signed, a bad signature, no key of the keyrings) names `where` (the URL)."""
    stripped = data.strip()
    if not stripped.startswith(_BEGIN) or not stripped.endswith(_END) or stripped.count(_BEGIN) != 1:
        raise BuildError(f"`{where}` is not one OpenPGP clear-signed message",
                         hint="the mirror may be broken or something between it and you rewrites files")
    with tempfile.TemporaryDirectory(prefix="minibuild-gpgv-") as home:
        args = ["gpgv", "--homedir", home, "--status-fd", "1", "--output", os.path.join(home, "signed")]
        for keyring in keyrings:
            args += ["--keyring", _binary_keyring(keyring, home)]
        inrelease = os.path.join(home, "InRelease")
        with open(inrelease, "wb") as f:
            f.write(data)
        try:
            proc = subprocess.run([*args, inrelease], capture_output=True, text=True, timeout=60)
        except FileNotFoundError:
            raise BuildError("`gpgv` is not installed: it checks the archive's signature",
                             hint="install the Debian package `gpgv`") from None
        status = proc.stdout.splitlines()
        good = [line.split(maxsplit=3)[-1] for line in status if line.startswith("[GNUPG:] GOODSIG ")]
        bad = [line for line in status if line.startswith("[GNUPG:] BADSIG")]
        if bad or not good:  # one good signature suffices, as for apt (Debian signs with several keys)
            missing = [line.split()[2] for line in status if line.startswith("[GNUPG:] NO_PUBKEY")]
            why = ("it is signed by a key the keyring does not hold (" + ", ".join(missing) + ")" if missing and not bad
                   else "its signature does not verify (BADSIG)" if bad else
                   "gpgv found no good signature: " + (proc.stderr.strip().splitlines() or ["no output"])[-1])
            raise BuildError(f"refusing `{where}`: {why}",
                             causes=tuple(f"keyring `{k}`" for k in keyrings),
                             hint="check the sysroot's `keyring` (default: Debian's archive keyring from the "
                                  "package `debian-archive-keyring`) and the mirror's URL")
        with open(os.path.join(home, "signed"), "rb") as f:
            return f.read()


def _binary_keyring(path: str, home: str) -> str:
    """gpgv reads binary keyrings only: an ASCII-armoured one (`.asc`) is de-armoured into `home` first."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as exc:
        raise BuildError(f"cannot read keyring `{path}`: {exc.strerror}",
                         hint="install `debian-archive-keyring`, or give the sysroot a `keyring`") from None
    if not head.lstrip().startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----"):
        return os.path.abspath(path)
    with open(path, encoding="ascii", errors="replace") as f:
        text = f.read()
    binary = b""
    for block in re.findall(r"-----BEGIN PGP PUBLIC KEY BLOCK-----\n(.*?)-----END PGP PUBLIC KEY BLOCK-----",
                            text, re.S):
        body = block.split("\n\n", 1)[-1]  # armour headers end at the first blank line
        lines = [line for line in body.splitlines() if line and not line.startswith("=")]  # `=` starts the CRC
        binary += base64.b64decode("".join(lines))
    out = os.path.join(home, f"keyring-{len(os.listdir(home))}.gpg")
    with open(out, "wb") as f:
        f.write(binary)
    return out


def parse(text: str, where: str) -> Release:
    """The fields of a Release file minibuild uses; BuildError when one it needs is missing."""
    found = list(control.paragraphs(text))
    if not found:
        raise BuildError(f"`{where}` holds no Release fields")
    p = found[0]
    files: dict[str, IndexFile] = {}
    for line in (control.field(p, "SHA256") or "").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].isdigit():
            files[parts[2]] = IndexFile(parts[2], parts[0].lower(), int(parts[1]))
    if not files:
        raise BuildError(f"`{where}` lists no SHA256 checksums", hint="minibuild trusts only SHA256 (as apt does)")
    return Release(
        suite=control.field(p, "Suite") or "", codename=control.field(p, "Codename") or "",
        date=control.field(p, "Date") or "", valid_until=control.field(p, "Valid-Until"),
        architectures=tuple((control.field(p, "Architectures") or "").split()),
        components=tuple((control.field(p, "Components") or "").split()),
        acquire_by_hash=(control.field(p, "Acquire-By-Hash") or "").lower() == "yes",
        files=files,
    )


def check(release: Release, suite: str, where: str, now: float) -> None:
    """Refuse a Release of another suite (a mirror serving the wrong one) or one past its `Valid-Until`."""
    if suite not in (release.suite, release.codename):
        raise BuildError(f"`{where}` is the Release of `{release.codename or release.suite}`, not of `{suite}`",
                         hint="check the sysroot's `suite` and the mirror's URL")
    if release.valid_until:
        try:
            until = parsedate_to_datetime(release.valid_until).timestamp()
        except (TypeError, ValueError):
            raise BuildError(f"`{where}`: unreadable `Valid-Until: {release.valid_until}`") from None
        if until < now:
            raise BuildError(f"`{where}` expired on {release.valid_until} (`Valid-Until`)",
                             hint="the mirror is out of date, or this machine's clock is wrong")
