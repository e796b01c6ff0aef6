"""A multi-platform image signed: the index and each platform's manifest, each with its `.sig` and `.att`, the SBOM
per platform; read back with skopeo and plain HTTP, signatures checked by openssl."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from tests.e2e.test_platforms import ARM64_LIBS, HELLO, _amd64_root, _arm64_root
from tests.signing.conftest import (
    SLSA,
    SPDX,
    attestations,
    keygen,
    openssl_verifies,
    pae,
    push_signed,
    skopeo_raw,
    tag_of,
)

pytestmark = pytest.mark.registry


@pytest.fixture(scope="module")
def multi_ws(tmp_path_factory) -> Path:
    if not ARM64_LIBS.is_dir() or not shutil.which("aarch64-linux-gnu-gcc"):
        pytest.fail("gcc-aarch64-linux-gnu and libc6-arm64-cross are needed (scripts/test.sh installs them)")
    root = tmp_path_factory.mktemp("multi-ws")
    src = root / "hello.c"
    src.write_text(HELLO)
    _amd64_root(root / "sysroots/amd64", src)
    _arm64_root(root / "sysroots/arm64", src)
    (root / "workspace.toml").write_text('[workspace]\nname = "multi"\n\n[platforms]\n'
                                         '"linux/amd64" = { sysroot = "sysroots/amd64" }\n'
                                         '"linux/arm64" = { sysroot = "sysroots/arm64" }\n')
    (root / "app").mkdir()
    (root / "app/BUILD.toml").write_text('[[image]]\nname = "hello"\nbinaries = ["/usr/bin/hello"]\n'
                                         'platforms = ["linux/amd64", "linux/arm64"]\n')
    return root


@pytest.fixture(scope="module")
def multi_keys(multi_ws):
    return keygen(multi_ws, "release")


@pytest.fixture(scope="module")
def pushed(multi_ws, multi_keys):
    return push_signed(multi_ws, "//app:hello", multi_keys.private)


def _children(registry: str, pushed) -> dict[str, str]:
    index = json.loads(skopeo_raw(f"{registry}/{pushed.repo}@{pushed.digest}"))
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    return {m["platform"]["architecture"]: m["digest"] for m in index["manifests"]}


def test_the_index_and_each_platform_are_signed(pushed, multi_keys, registry, plain_registry, tmp_path):
    children = _children(registry, pushed)
    assert set(children) == {"amd64", "arm64"}
    signed = {m["digest"]: m for m in pushed.out["signing"]["manifests"]}
    assert set(signed) == {pushed.digest, *children.values()}
    for digest in (pushed.digest, *children.values()):
        sig = json.loads(skopeo_raw(f"{registry}/{pushed.repo}:{tag_of(digest, 'sig')}"))
        [layer] = sig["layers"]
        payload = plain_registry.blob(pushed.repo, layer["digest"])
        assert json.loads(payload)["critical"]["image"]["docker-manifest-digest"] == digest
        assert openssl_verifies(multi_keys.public, layer["annotations"]["dev.cosignproject.cosign/signature"],
                                payload, tmp_path)


def test_each_platform_has_its_own_sbom_and_the_index_a_provenance_naming_them_all(pushed, multi_ws, multi_keys,
                                                                                  registry, plain_registry, tmp_path):
    children = _children(registry, pushed)
    root = attestations(plain_registry, pushed.repo, pushed.digest)
    assert [a.statement["predicateType"] for a in root] == [SLSA]
    named = {s["digest"]["sha256"] for s in root[0].statement["subject"]}
    assert named == {d.split(":")[1] for d in (pushed.digest, *children.values())}
    assert root[0].statement["predicate"]["buildDefinition"]["externalParameters"]["platforms"] == \
        ["linux/amd64", "linux/arm64"]
    for arch, digest in children.items():
        found = {a.statement["predicateType"]: a for a in attestations(plain_registry, pushed.repo, digest)}
        assert set(found) == {SLSA, SPDX}
        for a in found.values():
            assert a.statement["subject"][0]["digest"]["sha256"] == digest.split(":")[1]
            assert openssl_verifies(multi_keys.public, a.envelope["signatures"][0]["sig"],
                                    pae(a.envelope["payloadType"], a.payload), tmp_path)
        sbom = found[SPDX].statement["predicate"]
        manifest = json.loads(skopeo_raw(f"{registry}/{pushed.repo}@{digest}"))
        config = json.loads(plain_registry.blob(pushed.repo, manifest["config"]["digest"]))
        assert config["architecture"] == arch
        hello = next(f for f in sbom["files"] if f["fileName"].endswith("/usr/bin/hello"))
        assert arch in sbom["name"]
        inputs = {d["name"]: d for d in found[SLSA].statement["predicate"]["buildDefinition"]["resolvedDependencies"]}
        expected = hashlib.sha256((multi_ws / f"sysroots/{arch}/usr/bin/hello").read_bytes())
        assert inputs["/usr/bin/hello"]["digest"]["sha256"] == expected.hexdigest()
        assert {"algorithm": "SHA256", "checksumValue": expected.hexdigest()} in hello["checksums"]


def test_verify_checks_every_platform(pushed, multi_ws, multi_keys, cli, registry):
    r = cli("verify", pushed.ref, "--key", str(multi_keys.public), "--type", "sbom", "--type", "provenance",
            cwd=multi_ws)
    assert r.returncode == 0, r.stderr
    children = _children(registry, pushed)
    lines = r.stdout.splitlines()
    for arch, digest in children.items():
        assert any(line.startswith(f"linux/{arch}") and line.endswith(f": {digest}") for line in lines), arch
    assert r.stdout.count("sbom: ") == 2 and r.stdout.count("provenance: ") == 3


def test_a_platforms_signature_swapped_for_anothers_is_refused(multi_ws, multi_keys, cli, registry, plain_registry):
    p = push_signed(multi_ws, "//app:hello", multi_keys.private)
    children = _children(registry, p)
    amd64 = json.loads(plain_registry.manifest(p.repo, tag_of(children["amd64"], "sig")))
    plain_registry.put_manifest(p.repo, tag_of(children["arm64"], "sig"), amd64)
    r = cli("verify", p.ref, "--key", str(multi_keys.public), cwd=multi_ws)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    said = " ".join(r.stderr.split())
    assert f"the signature of `{p.ref.rsplit(':', 1)[0]}@{children['arm64']}` does not hold" in said
    assert f"the payload is for another image: it names `{children['amd64']}`" in said
