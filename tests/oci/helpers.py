"""Helpers of the oci tests: small trees written by the test, and images built from them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from minibuild.entry import TreeEntry
from minibuild.oci.image import ImageBlobs, ImageConfig, Platform, assemble_image
from minibuild.oci.layer import Layer, write_layer

HOST_BASH = "/bin/bash"


def write_tree(root: Path, mtime: int = 1_000_000_000) -> dict[str, Path]:
    """A few host files with content fixed by the test and host metadata chosen by the caller."""
    root.mkdir(parents=True, exist_ok=True)
    files = {
        "hello": (b"hello, world\n", 0o644),
        "run.sh": (b"#!/bin/sh\necho ok\n", 0o755),
        "big.bin": (bytes(range(256)) * 4096, 0o600),
    }
    out = {}
    for name, (data, mode) in files.items():
        path = root / name
        path.write_bytes(data)
        path.chmod(mode)
        os.utime(path, (mtime, mtime))
        out[name] = path
    return out


def tree_entries(files: dict[str, Path]) -> list[TreeEntry]:
    return [
        TreeEntry("/etc/hello", "file", 0o644, source=str(files["hello"]), origin="test hello"),
        TreeEntry("/usr/local/bin/run.sh", "file", 0o755, source=str(files["run.sh"]), origin="test run.sh"),
        TreeEntry("/var/lib/big.bin", "file", 0o644, source=str(files["big.bin"]), origin="test big.bin"),
        TreeEntry("/etc/passwd", "file", data=b"root:x:0:0:root:/root:/bin/sh\n", origin="generated"),
        TreeEntry("/bin", "symlink", target="usr/bin", origin="merged /usr"),
        TreeEntry("/tmp", "dir", 0o1777, origin="tmp"),
    ]


@dataclass(frozen=True)
class BuiltImage:
    image: ImageBlobs
    layers: tuple[tuple[Layer, str], ...]


def build_image(
    workdir: Path,
    *,
    compression: str = "gzip",
    platform: Platform | None = None,
    with_bash: bool = True,
    epoch: int = 0,
) -> BuiltImage:
    """Two layers (host /bin/bash, then the test's small files) and a config, written under `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    files = write_tree(workdir / "src")
    layers: list[tuple[Layer, str]] = []
    history = []
    if with_bash:
        dest = str(workdir / "layer-bash")
        bash = TreeEntry("/usr/bin/bash", "file", 0o755, source=HOST_BASH, origin="host bash")
        layers.append((write_layer([bash], dest, compression=compression, epoch=epoch), dest))
        history.append("bash from the host")
    dest = str(workdir / "layer-files")
    layers.append((write_layer(tree_entries(files), dest, compression=compression, epoch=epoch), dest))
    history.append("files of the test")
    config = ImageConfig(
        entrypoint=("/usr/bin/bash",),
        cmd=("-c", "echo ok"),
        env=("PATH=/usr/local/bin:/usr/bin",),
        workdir="/",
        labels=(("org.example.test", "oci"),),
        exposed_ports=("8080",),
    )
    image = assemble_image(
        platform or Platform(),
        config,
        layers,
        history,
        epoch=epoch,
        annotations={"org.opencontainers.image.title": "minibuild oci test"},
    )
    return BuiltImage(image=image, layers=tuple(layers))
