"""Several `minibuild build` processes in one workspace at once share the cache without corrupting it."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys

from tests.engine.helpers import corrupt_blobs, image_files, out_dir

BINARIES = ["/bin/sh", "/bin/ls", "/bin/cat", "/usr/bin/env"]


def _write(workspace) -> None:
    rules = []
    for i, binary in enumerate(BINARIES):
        rules.append(f'[[genrule]]\nname = "g{i}"\nouts = ["g"]\ncmd = "sleep 0.3; echo {i} > $(OUT)"\n\n'
                     f'[[image]]\nname = "i{i}"\nbinaries = ["{binary}"]\n'
                     f'files = [{{ src = ":g{i}", dest = "/g" }}, {{ src = "//shared:conf", dest = "/etc/" }}]\n')
    workspace.write("pkg/BUILD.toml", "\n".join(rules))
    workspace.write("shared/BUILD.toml", '[[files]]\nname = "conf"\nfiles = [{ src = "c.conf", dest = "/c.conf" }]\n')
    workspace.write("shared/c.conf", "shared = true\n")


def test_four_processes_at_once(workspace, cli):
    _write(workspace)
    # Overlapping requests: every image is built by at least two of the processes.
    requests = [["//pkg:all"], ["//pkg:i0", "//pkg:i1", "//pkg:i2"], ["//pkg:i1", "//pkg:i2", "//pkg:i3"],
                ["//pkg:i3", "//pkg:i0", "//pkg:g1"]]
    env = {**os.environ, "NO_COLOR": "1"}
    procs = [subprocess.Popen([sys.executable, "-m", "minibuild", "build", *labels, "--json", "--no-load", "-j", "4"],
                              cwd=workspace.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for labels in requests]
    outputs = [p.communicate(timeout=300) for p in procs]
    digests: dict[str, set[str]] = {}
    total_run = 0
    for p, (stdout, stderr) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, stderr
        out = json.loads(stdout)
        total_run += out["actions"]["run"]
        for t in out["targets"]:
            if "digest" in t:
                digests.setdefault(t["label"], set()).add(t["digest"])
    assert set(digests) == {f"//pkg:i{i}" for i in range(len(BINARIES))}
    assert all(len(d) == 1 for d in digests.values()), digests
    # 4 genrules + 3 actions an image at most once each: the processes did not redo each other's work.
    assert total_run <= len(BINARIES) * 4, total_run

    again = cli("build", "//...", "--json", "--no-load", cwd=workspace.root)
    assert again.returncode == 0, again.stderr
    assert again.json()["actions"]["run"] == 0
    assert {t["label"]: {t["digest"]} for t in again.json()["targets"] if "digest" in t} == digests
    assert corrupt_blobs(workspace.root / ".minibuild" / "cache") == []

    for i, binary in enumerate(BINARIES):
        files = image_files(out_dir(workspace.root, f"//pkg:i{i}") / "oci")
        assert files["/g"][1] == f"{i}\n".encode()
        assert files["/etc/c.conf"][1] == b"shared = true\n"
        assert os.path.realpath(binary) in files or binary in files
    leftovers = os.listdir(workspace.root / ".minibuild" / "cache" / "tmp")
    assert leftovers == [], leftovers



def _write_layouts(base: str, barrier, rounds: int, log: str) -> None:
    from minibuild.digest import sha256_bytes
    from minibuild.oci.image import MEDIA_TYPE_MANIFEST
    from minibuild.oci.layout import write_layout
    from minibuild.oci.spec import Descriptor

    config = b"{}"
    manifest = json.dumps({"schemaVersion": 2, "mediaType": MEDIA_TYPE_MANIFEST, "layers": [],
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": sha256_bytes(config), "size": len(config)}}).encode()
    desc = Descriptor(MEDIA_TYPE_MANIFEST, sha256_bytes(manifest), len(manifest))
    with open(log, "w") as errors:
        for i in range(rounds):
            barrier.wait()
            try:
                write_layout(os.path.join(base, f"oci{i}"), {desc.digest: manifest, sha256_bytes(config): config},
                             [desc])
            except Exception as exc:  # noqa: BLE001 - collected for the assertion
                errors.write(f"round {i}: {exc}\n")


def test_processes_writing_the_same_layout_at_once(tmp_path):
    """What `minibuild build` does in `_finish` when several builds materialise the same image at once.

    Four processes write the same fresh OCI layout at the same moment (a barrier lines them up),
    many times over, so the window between "does it exist?" and "rename" is hit.
    """
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(4)
    (tmp_path / "layouts").mkdir()
    logs = [tmp_path / f"errors{n}.txt" for n in range(4)]
    procs = [ctx.Process(target=_write_layouts, args=(str(tmp_path / "layouts"), barrier, 200, str(log)))
             for log in logs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    found = [line for log in logs for line in log.read_text().splitlines()]
    assert [p.exitcode for p in procs] == [0] * 4
    assert found == [], f"{len(found)} failures, e.g. {found[0]}"
