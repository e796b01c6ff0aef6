from __future__ import annotations

import hashlib
import json

import pytest

from minibuild.errors import InputError
from minibuild.oci.image import (
    ImageConfig,
    Platform,
    assemble_image,
    assemble_index,
    config_json,
    created_timestamp,
    descriptor_for,
    index_json,
    manifest_json,
)
from minibuild.oci.layer import Layer
from minibuild.oci.spec import MEDIA_TYPE_CONFIG, MEDIA_TYPE_LAYER_GZIP, Descriptor, canonical_json

D1, D2, D3 = ("sha256:" + c * 64 for c in "123")
LAYER = Layer(Descriptor(MEDIA_TYPE_LAYER_GZIP, D1, 10), diff_id=D2, uncompressed_size=20)


def test_created_is_rfc3339_utc():
    assert created_timestamp(0) == "1970-01-01T00:00:00Z"
    assert created_timestamp(1_700_000_000) == "2023-11-14T22:13:20Z"


def test_canonical_json_is_sorted_and_compact():
    assert (
        canonical_json({"b": 1, "a": [1, {"d": "\u00e9", "c": None}]})
        == b'{"a":[1,{"c":null,"d":"\xc3\xa9"}],"b":1}'
    )


def test_descriptor_for_hashes_the_bytes_given():
    data = b'{"x": 1}'
    desc = descriptor_for(data, MEDIA_TYPE_CONFIG)
    assert desc.digest == "sha256:" + hashlib.sha256(data).hexdigest() and desc.size == len(data)
    assert desc.to_json() == {"mediaType": MEDIA_TYPE_CONFIG, "digest": desc.digest, "size": 8}


def test_config_document_exactly():
    config = ImageConfig(
        entrypoint=("/bin/app",),
        cmd=("--serve",),
        env=("PATH=/bin", "LANG=C.UTF-8"),
        workdir="/srv",
        user="1000:1000",
        labels=(("b", "2"), ("a", "1")),
        exposed_ports=("80", "53/udp"),
        stop_signal="SIGTERM",
    )
    doc = config_json(Platform(architecture="arm64", variant="v8"), config, [LAYER], ["app files"], epoch=0)
    assert doc == (
        b'{"architecture":"arm64","config":{"Cmd":["--serve"],"Entrypoint":["/bin/app"],'
        b'"Env":["PATH=/bin","LANG=C.UTF-8"],"ExposedPorts":{"53/udp":{},"80/tcp":{}},'
        b'"Labels":{"a":"1","b":"2"},"StopSignal":"SIGTERM","User":"1000:1000","WorkingDir":"/srv"},'
        b'"created":"1970-01-01T00:00:00Z",'
        b'"history":[{"created":"1970-01-01T00:00:00Z","created_by":"app files"}],'
        b'"os":"linux","rootfs":{"diff_ids":["' + D2.encode() + b'"],"type":"layers"},"variant":"v8"}'
    )


def test_empty_fields_are_omitted_not_null():
    doc = json.loads(config_json(Platform(), ImageConfig(), [], []))
    assert doc == {
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": []},
    }


def test_history_from_a_base_is_kept_verbatim():
    base = {"created": "2020-01-01T00:00:00Z", "created_by": "FROM debian", "comment": "kept"}
    empty = {"created": "2020-01-01T00:00:01Z", "created_by": "ENV X=1", "empty_layer": True}
    doc = json.loads(config_json(Platform(), ImageConfig(), [LAYER, LAYER], [base, empty, "mine"], epoch=60))
    assert doc["history"] == [base, empty, {"created": "1970-01-01T00:01:00Z", "created_by": "mine"}]
    with pytest.raises(ValueError, match="history"):
        config_json(Platform(), ImageConfig(), [LAYER], ["a", "b"])


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (ImageConfig(env=("NOVALUE",)), "KEY=value"),
        (ImageConfig(env=("=x",)), "KEY=value"),
        (ImageConfig(env=("A=1", "A=2")), "set twice"),
        (ImageConfig(labels=(("a", "1"), ("a", "2"))), "set twice"),
        (ImageConfig(exposed_ports=("http",)), "exposed port"),
        (ImageConfig(exposed_ports=("70000",)), "exposed port"),
        (ImageConfig(exposed_ports=("80/icmp",)), "exposed port"),
        (ImageConfig(entrypoint="/bin/sh"), "list of strings"),  # type: ignore[arg-type]
    ],
)
def test_invalid_runtime_config(config, message):
    with pytest.raises(InputError, match=message):
        config_json(Platform(), config, [], [])


def test_inherit_follows_dockerfile_rules():
    base = ImageConfig(
        entrypoint=("/bin/sh", "-c"),
        cmd=("echo base",),
        env=("PATH=/bin", "A=1"),
        labels=(("x", "base"),),
        exposed_ports=("80/tcp",),
        user="nobody",
    )
    derived = ImageConfig(env=("A=2", "B=3"), labels=(("x", "mine"),), exposed_ports=("443",)).inherit(base)
    assert derived.entrypoint == ("/bin/sh", "-c") and derived.cmd == ("echo base",)
    assert derived.env == ("PATH=/bin", "A=2", "B=3")
    assert derived.labels == (("x", "mine"),)
    assert derived.exposed_ports == ("80/tcp", "443/tcp")
    assert derived.user == "nobody"
    assert ImageConfig(entrypoint=("/app",)).inherit(base).cmd == ()
    assert ImageConfig.from_json(json.loads(config_json(Platform(), base, [], []))["config"]).inherit(
        ImageConfig()
    ) == ImageConfig.from_json(json.loads(config_json(Platform(), base, [], []))["config"])


def test_manifest_document():
    config = descriptor_for(b"{}", MEDIA_TYPE_CONFIG)
    doc = json.loads(manifest_json(config, [LAYER], {"org.opencontainers.image.title": "t"}))
    assert doc == {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config.to_json(),
        "layers": [{"mediaType": MEDIA_TYPE_LAYER_GZIP, "digest": D1, "size": 10}],
        "annotations": {"org.opencontainers.image.title": "t"},
    }
    assert "annotations" not in json.loads(manifest_json(config, [LAYER]))


def test_index_document_carries_platforms():
    amd = assemble_image(Platform(), ImageConfig(), [(LAYER, "x")], ["l"])
    arm = assemble_image(Platform(architecture="arm64", variant="v8"), ImageConfig(), [(LAYER, "x")], ["l"])
    desc, data, blobs = assemble_index([amd, arm])
    doc = json.loads(data)
    assert doc["mediaType"] == "application/vnd.oci.image.index.v1+json" and doc["schemaVersion"] == 2
    assert [m["platform"] for m in doc["manifests"]] == [
        {"architecture": "amd64", "os": "linux"},
        {"architecture": "arm64", "os": "linux", "variant": "v8"},
    ]
    assert desc.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert set(blobs) == {desc.digest, amd.manifest.digest, arm.manifest.digest, amd.config.digest,
                          arm.config.digest, D1}  # fmt: skip
    with pytest.raises(InputError, match="more than one image for platform `linux/amd64`"):
        index_json([amd.manifest, amd.manifest])


def test_assemble_image_hashes_what_it_returns():
    image = assemble_image(Platform(), ImageConfig(cmd=("x",)), [(LAYER, "blob")], ["l"], epoch=5)
    assert image.config == descriptor_for(image.config_bytes, MEDIA_TYPE_CONFIG)
    assert image.manifest.digest == "sha256:" + hashlib.sha256(image.manifest_bytes).hexdigest()
    assert json.loads(image.manifest_bytes)["config"]["digest"] == image.config.digest
    assert image.blobs()[D1] == "blob"
