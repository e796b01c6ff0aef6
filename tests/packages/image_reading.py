"""What the provenance tests compare against, read independently of minibuild: an OCI layout's files (its layers
applied in order), what a `.deb` ships (`dpkg-deb -c`, `-f`, `-I ... md5sums`, `sha256sum`), and a set of dpkg
status paragraphs as dpkg itself reads them (`dpkg-query --admindir`)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import tarfile
import urllib.parse
from pathlib import Path

from tests.packages.repo import run

MERGED = ("/bin/", "/sbin/", "/lib/", "/lib32/", "/lib64/", "/libx32/")
STATUS_D = "/var/lib/dpkg/status.d/"
# What dpkg-query and dpkg-deb print of a package, field by field (the same format for both); `@@` ends a record
# (a description spans lines).
FIELDS = "${Package}|${Version}|${Architecture}|${Source}|${Maintainer}|${Installed-Size}|${Multi-Arch}|" \
         "${Pre-Depends}|${Depends}|${Section}|${Priority}|${Homepage}|${Description}@@\n"


def usr(path: str) -> str:
    """A path as it lands on merged /usr (`/bin/x` -> `/usr/bin/x`)."""
    return "/usr" + path if path.startswith(MERGED) else path


def layout_files(layout: Path, architecture: str | None = None) -> dict[str, bytes]:
    """The regular files of the image in an OCI layout (of `architecture` in an index), layers applied in order."""
    def blob(digest: str) -> Path:
        return layout / "blobs" / "sha256" / digest.split(":")[1]

    index = json.loads((layout / "index.json").read_text())
    top = json.loads(blob(index["manifests"][0]["digest"]).read_text())
    if "manifests" in top:  # an image index: one manifest per platform
        top = json.loads(blob(next(m["digest"] for m in top["manifests"]
                                   if m["platform"]["architecture"] == architecture)).read_text())
    files: dict[str, bytes] = {}
    for layer in top["layers"]:
        with tarfile.open(blob(layer["digest"]), mode="r:*") as tar:
            for member in tar:
                path = "/" + member.name.lstrip("./")
                if member.isfile():
                    extracted = tar.extractfile(member)
                    assert extracted is not None
                    files[path] = extracted.read()
                else:
                    files.pop(path, None)
    return files


def shipped(deb: Path) -> set[str]:
    """The files and symlinks a .deb ships, at their merged-/usr paths (`dpkg-deb -c`)."""
    out = set()
    for line in run("dpkg-deb", "-c", deb).splitlines():
        perms, *_, rest = line.split(None, 5)
        if perms[0] in "-lh":
            out.add(usr("/" + rest.split(" -> ")[0].split(" link to ")[0].lstrip("./")))
    return out


def deb_md5sums(deb: Path) -> dict[str, str]:
    """The .deb's own md5sums control file, at merged-/usr paths."""
    proc = subprocess.run(["dpkg-deb", "-I", str(deb), "md5sums"], capture_output=True, text=True)
    lines = proc.stdout.splitlines() if proc.returncode == 0 else []
    return {usr("/" + line.split("  ", 1)[1]): line.split("  ", 1)[0] for line in lines if "  " in line}


def deb_show(deb: Path) -> str:
    return run("dpkg-deb", "--show", f"--showformat={FIELDS}", deb)


def purl(name: str, version: str, arch: str) -> str:
    """The package URL of a Debian package (purl-spec: the version percent-encoded)."""
    return f"pkg:deb/debian/{name}@{urllib.parse.quote(version, safe='')}?arch={arch}"


def sha256sum(path: Path) -> str:
    return run("sha256sum", path).split()[0]


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def dpkg_reads(paragraphs: list[bytes], admin: Path) -> dict[str, str]:
    """{package: `<db:Status-Abbrev>|` and its FIELDS record} of status paragraphs, as dpkg-query reads them from an
    admin directory holding just them."""
    (admin / "info").mkdir(parents=True, exist_ok=True)
    (admin / "updates").mkdir(exist_ok=True)
    (admin / "status").write_bytes(b"\n".join(paragraphs))
    text = run("dpkg-query", f"--admindir={admin}", "-W", "--showformat=${db:Status-Abbrev}|" + FIELDS)
    records = [r.lstrip("\n") + "@@\n" for r in text.split("@@\n") if r.strip()]
    return {r.split("|")[1]: r for r in records}
