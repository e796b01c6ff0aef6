"""Secrets kept out of images: files that hold private keys or credentials stop the build, unless the image's
`allow_secrets` names them (docs/runtime.md, "Secrets").

Two checks, over every file an image adds, wherever it comes from (`files`, genrule outputs, the sysroot or a
package sysroot, runtime files, `trees`):
  - by name, case-insensitively: well-known credential files (`id_rsa`, `.env`, `.netrc`, `.aws/credentials`...),
    whatever they hold;
  - by content: a PEM, OpenSSH, PGP, SSH2 or PuTTY private key block anywhere in a file, its marker followed by
    the key's base64 (so a program's message naming a key format is not one). Compiled code (ELF files, static
    libraries) is not read for it: libraries carry the well-known keys of their self-tests (GnuTLS's
    libgnutls.so.30, which curl's image ships, holds a dozen).
The content is looked at in the bytes the layer writer reads anyway (`SecretWatch.file` is its `watch`), so no
file is read twice.
"""

from __future__ import annotations

import fnmatch
import json
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from minibuild.entry import TreeEntry
from minibuild.errors import InputError


@dataclass(frozen=True)
class Finding:
    path: str  # the canonical path in the image
    why: str  # "an OpenSSH private key block at offset 0", "a well-known credential file name (...)"
    origin: str  # who asked for the file (`//app:img files[0]`, "runtime files")
    reason: str  # why it is there ("tree /srv/app")


# -- by name ---------------------------------------------------------------------------------------------------

# Matched against the lowercased path. `*.env` files (Go's `$GOROOT/go.env`, systemd environment files) are not
# matched, nor `.env.example`-style templates; `*.key`, `*.pem` and `*.crt` are left to the content check.
_NAMES: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(p), what) for p, what in (
    (r"/id_(?:rsa|dsa|ecdsa|ed25519|xmss)[^/]*(?<!\.pub)$", "SSH private key `id_*`"),
    (r"/\.ssh/(?!(?:known_hosts|authorized_keys)[^/]*$|config$)[^/]+(?<!\.pub)$", "a file of an `.ssh` directory"),
    (r"/\.env(?:\.(?!(?:example|sample|template|dist)$)[^/]+)?$", "environment file `.env`"),
    (r"/[._]netrc$", "`.netrc`, passwords of FTP and HTTP hosts"),
    (r"/\.pgpass$", "PostgreSQL password file `.pgpass`"),
    (r"/\.my\.cnf$", "MySQL client file `.my.cnf`, often with a password"),
    (r"/\.git-credentials$", "git credential store `.git-credentials`"),
    (r"/\.npmrc$", "npm configuration `.npmrc`, where registry tokens live"),
    (r"/\.pypirc$", "PyPI configuration `.pypirc`, where upload tokens live"),
    (r"/\.docker/config\.json$", "Docker client configuration, with registry credentials"),
    (r"/\.aws/credentials$", "AWS credentials `.aws/credentials`"),
    (r"/\.azure/", "a file of an Azure CLI profile `.azure/`"),
    (r"/gcloud/(?:credentials\.db|access_tokens\.db|legacy_credentials/)", "Google Cloud SDK credentials"),
    (r"/application_default_credentials\.json$", "Google application default credentials"),
    (r"/\.kube/config$", "Kubernetes client configuration `.kube/config`"),
    (r"/\.gnupg/(?:private-keys-v1\.d/|secring\.gpg$)", "GnuPG secret keyring"),
    (r"\.(?:p12|pfx)$", "PKCS #12 file, certificates with their private keys"),
    (r"\.(?:jks|keystore)$", "Java keystore"),
    (r"^/etc/g?shadow-?$", "password hashes `/etc/shadow`"),
))


def name_finding(path: str) -> str | None:
    """Why `path` is a well-known credential file, or None."""
    lowered = path.lower()
    for pattern, what in _NAMES:
        if pattern.search(lowered):
            return f"a well-known credential file name ({what})"
    return None


# -- by content ------------------------------------------------------------------------------------------------

# The needle is looked for in every chunk the layer writer reads; only around a hit is the whole pattern tried.
_NEEDLE = re.compile(rb"PRIVATE KEY|PuTTY-User-Key-File-")
_AR = b"!<arch>\n"  # a static library: compiled code, as ELF files are
_BEFORE = 64  # bytes kept before a needle: `-----BEGIN ENCRYPTED ` and the like
_AFTER = 1024  # bytes looked at after it: the marker's end, armor or RFC 1421 headers, the first base64
_EOL = rb"(?:\r?\n|(?:\\r)?\\n)"  # a line end, or one escaped in JSON (a Google service-account key file)
_BLOCK = re.compile(
    rb"(?:-----BEGIN (?P<pem>[A-Z0-9 .-]{0,40}?PRIVATE KEY(?: BLOCK)?)-----"
    rb"|---- BEGIN (?P<ssh2>SSH2 ENCRYPTED PRIVATE KEY) ----)[ \t]*" + _EOL
    + rb"(?:[A-Za-z][A-Za-z0-9-]*:[^\r\n\\]*" + _EOL + rb")*(?:[ \t]*" + _EOL + rb")?[A-Za-z0-9+/=]{16}"
    rb"|(?P<putty>PuTTY-User-Key-File-\d+): *[\w@.-]+" + _EOL + rb"Encryption: ")


def _describe(match: re.Match[bytes]) -> str:
    if match["putty"]:
        return "a PuTTY private key"
    if match["ssh2"]:
        return "an SSH2 (ssh.com) private key block"
    kind = match["pem"].decode()
    if kind == "OPENSSH PRIVATE KEY":
        return "an OpenSSH private key block"
    if kind.startswith("PGP "):
        return "a PGP private key block"
    return f"a PEM private key block (`{kind}`)"


class KeyScan:
    """Looks for a private key block in one file's bytes, fed in chunks as they are read."""

    def __init__(self) -> None:
        self._kept = b""  # the tail of what came so far: a needle or block may span two chunks
        self._base = 0  # offset in the file of _kept[0]
        self._next = 0  # where in _kept the needle search goes on
        self._typed = False  # the first bytes were looked at (ELF or not)
        self._skip = False  # an ELF file or a static library, or a block already found
        self.found: str | None = None

    def update(self, data: bytes) -> None:
        if self._skip or not data:
            return
        window = self._kept + data
        if not self._typed:
            if len(window) < len(_AR):
                self._kept = window
                return
            self._typed = True
            if window.startswith((b"\x7fELF", _AR)):
                self._skip = True
                return
        self._look(window, final=False)

    def finish(self) -> str | None:
        """What was found (how and where), once the last chunk was fed."""
        if not self._skip and self._kept:
            self._look(self._kept, final=True)
        self._kept = b""
        return self.found

    def _look(self, window: bytes, *, final: bool) -> None:
        at = self._next
        while (hit := _NEEDLE.search(window, at)) is not None:
            if not final and len(window) - hit.end() < _AFTER:
                self._keep(window, hit.start() - _BEFORE, hit.start())  # judged when more has come
                return
            start = max(0, hit.start() - _BEFORE)
            block = _BLOCK.search(window, start, hit.end() + _AFTER)
            if block is not None and block.start() <= hit.start():
                self.found = f"{_describe(block)} at offset {self._base + block.start()}"
                self._skip = True
                return
            at = hit.start() + 1
        self._keep(window, len(window) - _BEFORE - 32, max(at, len(window) - 32))

    def _keep(self, window: bytes, start: int, search_from: int) -> None:
        start = max(0, start)
        self._kept = window[start:]
        self._base += start
        self._next = max(0, search_from - start)


# -- one image -------------------------------------------------------------------------------------------------

class SecretWatch:
    """The secrets of one image: names checked up front, contents while the layers are written (from threads)."""

    def __init__(self, entries: Sequence[TreeEntry]) -> None:
        self._lock = threading.Lock()
        self.findings: list[Finding] = []
        for e in entries:
            why = name_finding(e.path) if e.kind == "file" else None
            if why:
                self.findings.append(Finding(e.path, why, e.origin, e.reason))

    def file(self, entry: TreeEntry) -> _FileScan:
        """The layer writer's `watch`: sees the bytes of `entry` as they go into the layer."""
        return _FileScan(self, entry)

    def add(self, entry: TreeEntry, why: str) -> None:
        with self._lock:
            self.findings.append(Finding(entry.path, why, entry.origin, entry.reason))

    def check(self, owner: object, allow: Sequence[str], canonical: Callable[[str], str],
              warn: Callable[[str], None]) -> None:
        """Stop the build on the files `allow` does not name, listing each; warn of a pattern that names none.

        `canonical`: a path as the image's tree names it, through its symlinks (`/lib/x` -> `/usr/lib/x`)."""
        patterns = {p: p if any(c in p for c in "*?[") else canonical(p) for p in allow}
        by_path: dict[str, list[Finding]] = {}
        for f in self.findings:
            by_path.setdefault(f.path, []).append(f)
        granted = {path: next((p for p in allow if _names(patterns[p], path)), None) for path in by_path}
        for pattern in allow:
            if pattern not in granted.values():
                warn(f"`allow_secrets` names `{pattern}`, but the image ships no secret there")
        refused = sorted(path for path, pattern in granted.items() if pattern is None)
        if not refused:
            return
        causes = tuple(f"`{path}` looks like a secret: {'; '.join(f.why for f in by_path[path])}; "
                       f"from {_source(by_path[path][0])}" for path in refused)
        line = "allow_secrets = " + json.dumps([*allow, *refused])  # a JSON string is a TOML one
        one = len(refused) == 1
        what = "a file that looks like a secret" if one else f"{len(refused)} files that look like secrets"
        raise InputError(
            f"`{owner}` would ship {what}", causes=causes,
            hint=f"remove {'it' if one else 'them'} from the image; or, if {'it is' if one else 'they are'} meant to "
                 f"ship, add this line to the target `{owner}`:\n    {line}")


def _source(f: Finding) -> str:
    # A file of the image's own `files` has the reason "file": its origin (`//img:x files[0]`) says it all.
    return f.origin if f.reason in ("", "file") else f"{f.origin}: {f.reason}"


def _names(pattern: str, path: str) -> bool:
    """`allow_secrets` names `path` by this pattern: the path itself, a directory above it, or a glob."""
    return path == pattern or path.startswith(pattern.rstrip("/") + "/") or fnmatch.fnmatchcase(path, pattern)


class _FileScan:
    def __init__(self, watch: SecretWatch, entry: TreeEntry) -> None:
        self._watch = watch
        self._entry = entry
        self._scan = KeyScan()
        self.update = self._scan.update
        self.found: str | None = None  # once closed: what was found in the file, if anything

    def close(self) -> None:
        why = self.found = self._scan.finish()
        if why:
            self._watch.add(self._entry, why)
