"""The parts of a `.deb` (deb(5)): an `ar` archive of `debian-binary`, `control.tar.*` and `data.tar.*`.

`data.tar` holds the files; of the control part only `control` and `md5sums` are read (they describe the
package in an image's dpkg status, docs/packages.md); its maintainer scripts are never run.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tarfile
from collections.abc import Iterator

from minibuild.errors import BuildError

_AR_MAGIC = b"!<arch>\n"
_HEADER = 60


def members(data: bytes, where: str) -> Iterator[tuple[str, bytes]]:
    """(name, content) of each member of an ar archive."""
    if not data.startswith(_AR_MAGIC):
        raise BuildError(f"`{where}` is not a Debian package (no ar archive header)")
    pos = len(_AR_MAGIC)
    while pos + _HEADER <= len(data):
        header = data[pos:pos + _HEADER]
        if header[58:60] != b"`\n":
            raise BuildError(f"`{where}` is not a valid ar archive (bad member header at byte {pos})")
        name = header[:16].decode("ascii", errors="replace").strip().rstrip("/")
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError:
            raise BuildError(f"`{where}`: bad member size at byte {pos}") from None
        start = pos + _HEADER
        if start + size > len(data):
            raise BuildError(f"`{where}` is truncated (member `{name}`)")
        yield name, data[start:start + size]
        pos = start + size + (size & 1)  # members are padded to an even offset


def _decompress(name: str, payload: bytes, where: str) -> bytes:
    try:
        if name.endswith(".xz"):
            return lzma.decompress(payload)
        if name.endswith(".gz"):
            return gzip.decompress(payload)
        if name.endswith(".zst"):
            # lazy: zstandard, needed only for .deb files compressed with zstd (Ubuntu's; Debian uses xz)
            import zstandard

            with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(payload)) as reader:
                return reader.read()
        if name.endswith(".bz2"):
            return bz2.decompress(payload)
        if name.endswith(".tar"):
            return payload
    except (lzma.LZMAError, OSError, EOFError, ValueError) as exc:
        raise BuildError(f"cannot decompress `{name}` of `{where}`: {exc}") from None
    raise BuildError(f"`{where}`: unknown compression of `{name}`")


def data_tar(data: bytes, where: str) -> tarfile.TarFile:
    """The `data.tar` of a .deb, opened for reading."""
    for name, payload in members(data, where):
        if name.startswith("data.tar"):
            return tarfile.open(fileobj=io.BytesIO(_decompress(name, payload, where)), mode="r:")
    raise BuildError(f"`{where}` has no `data.tar` member")


def control_files(data: bytes, where: str, names: tuple[str, ...] = ("control", "md5sums")) -> dict[str, str]:
    """The text of the `control.tar.*` members named (those the package has): `control`, `md5sums`..."""
    for name, payload in members(data, where):
        if name.startswith("control.tar"):
            found = {}
            with tarfile.open(fileobj=io.BytesIO(_decompress(name, payload, where)), mode="r:") as tar:
                for member in tar.getmembers():
                    short = member.name.lstrip("./")
                    extracted = tar.extractfile(member) if short in names and member.isfile() else None
                    if extracted is not None:
                        found[short] = extracted.read().decode("utf-8", errors="replace")
            if "control" not in found:
                raise BuildError(f"`{where}` has no `control` file")
            return found
    raise BuildError(f"`{where}` has no `control.tar` member")
