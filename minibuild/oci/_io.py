"""File writing shared by the oci modules: atomic replacement and OSError -> BuildError translation."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from minibuild.errors import BuildError

# Blobs and layout files are world-readable whatever the umask, so the output is the same on every machine.
FILE_MODE = 0o644


def write_error(exc: OSError, path: str) -> BuildError:
    if exc.errno == errno.ENOSPC:
        return BuildError(f"no space left writing `{path}`")
    if exc.errno == errno.EDQUOT:
        return BuildError(f"disk quota exceeded writing `{path}`")
    return BuildError(f"cannot write `{path}`: {exc.strerror or exc}")


def read_error(exc: OSError, path: str, what: str = "") -> BuildError:
    suffix = f" ({what})" if what else ""
    return BuildError(f"cannot read `{path}`{suffix}: {exc.strerror or exc}")


@contextmanager
def atomic_file(dest: str) -> Iterator[BinaryIO]:
    """Write a temp file beside `dest`, fsync it, rename it over `dest`: readers see old or new, never half.

    OSErrors become BuildErrors naming `dest` (the body must translate errors of anything else it reads);
    on any failure the temp file is removed.
    """
    directory = os.path.dirname(os.path.abspath(dest))
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(dest) + ".", suffix=".tmp")
    except OSError as exc:
        raise write_error(exc, dest) from exc
    try:
        try:
            with os.fdopen(fd, "wb") as f:
                yield f
                f.flush()
                os.fchmod(f.fileno(), FILE_MODE)
                os.fsync(f.fileno())
            os.replace(tmp, dest)
        except OSError as exc:
            raise write_error(exc, dest) from exc
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class SourceReader:
    """Wraps a source file so a read failure is reported against the host path it came from."""

    def __init__(self, f: BinaryIO, path: str, what: str = "") -> None:
        self._f = f
        self._path = path
        self._what = what

    def read(self, n: int = -1) -> bytes:
        try:
            return self._f.read(n)
        except OSError as exc:
            raise read_error(exc, self._path, self._what) from exc
