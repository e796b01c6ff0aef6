"""The image actions after the layers: the config and manifest of each platform, the index of several,
and the tarball `docker load` takes."""

from __future__ import annotations

import json
from typing import Any

from minibuild.executor import ActionRun
from minibuild.image.documents import read_json
from minibuild.image.params import ImageParams, IndexParams
from minibuild.image.platform import host_architecture, parse_platform
from minibuild.oci.archive import write_docker_archive
from minibuild.oci.image import MEDIA_TYPE_MANIFEST, ImageConfig, Platform, assemble_image, descriptor_for, index_json
from minibuild.oci.layer import Layer
from minibuild.oci.spec import Descriptor


def _layer(d: dict[str, Any]) -> Layer:
    return Layer(Descriptor(d["media_type"], d["digest"], d["size"]), d["diff_id"], d["uncompressed_size"])


def write_image(run: ActionRun[ImageParams]) -> None:
    """The config and manifest of one platform's image (and its tarball when it is the only platform)."""
    p = run.params
    info = read_json(run.input(p.layers))
    all_layers = info["layers"]
    layers = [(_layer(d), run.blob_path(d["digest"])) for d in all_layers]
    c = p.config
    config = ImageConfig(
        entrypoint=tuple(c.entrypoint), cmd=tuple(c.cmd), env=tuple(c.env), workdir=c.workdir,
        user=info.get("user") or c.user,  # an account's numbers when `user` names one (layers.json)
        labels=tuple(sorted(c.labels.items())), exposed_ports=tuple(c.exposed_ports), stop_signal=c.stop_signal,
        volumes=tuple(c.volumes),
    )
    architecture, variant = info["architecture"], info.get("variant")
    if p.base_config is not None:
        base_config = read_json(run.input(p.base_config))
        config = config.inherit(ImageConfig.from_json(base_config.get("config")))
        if architecture is None:
            architecture, variant = base_config.get("architecture"), base_config.get("variant")
    if p.platform:
        want_arch, want_variant = parse_platform(p.platform)
        architecture, variant = want_arch, want_variant or (variant if architecture == want_arch else None)
    platform = Platform(os="linux", architecture=architecture or "amd64", variant=variant)
    image = assemble_image(platform, config, layers, [d["created_by"] for d in all_layers],
                           epoch=p.epoch, annotations=dict(p.annotations) or None)
    with open(run.output(p.config_out), "wb") as f:
        f.write(image.config_bytes)
    with open(run.output(p.manifest_out), "wb") as f:
        f.write(image.manifest_bytes)
    if p.tarball_out is not None:
        write_docker_archive(run.output(p.tarball_out), config=image.config_bytes, layers=layers,
                             repo_tags=[p.tag], manifest=image.manifest_bytes)


def write_index(run: ActionRun[IndexParams]) -> None:
    """An OCI image index over the platforms' manifests, and a docker tarball of the host's platform."""
    p = run.params
    manifests = []
    chosen = None
    for img in p.images:
        with open(run.input(img.config), "rb") as f:
            config_bytes = f.read()
        with open(run.input(img.manifest), "rb") as f:
            manifest_bytes = f.read()
        doc = json.loads(config_bytes)
        platform = Platform(os=doc.get("os", "linux"), architecture=doc["architecture"], variant=doc.get("variant"))
        manifests.append(descriptor_for(manifest_bytes, MEDIA_TYPE_MANIFEST, platform=platform))
        if chosen is None or platform.architecture == host_architecture():
            chosen = (img, config_bytes, manifest_bytes)
    with open(run.output(p.index_out), "wb") as f:
        f.write(index_json(manifests, dict(p.annotations) or None))
    assert chosen is not None
    img, config_bytes, manifest_bytes = chosen
    layers = [(_layer(d), run.blob_path(d["digest"])) for d in read_json(run.input(img.layers))["layers"]]
    write_docker_archive(run.output(p.tarball_out), config=config_bytes, layers=layers, repo_tags=[p.tag],
                         manifest=manifest_bytes)
