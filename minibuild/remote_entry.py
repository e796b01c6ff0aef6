"""An action-cache entry as a remote cache holds it: the files of a REAPI `ActionResult`.

The local entry of an action (`executor.py`) is {outputs, blobs, discovered, warnings}. Remotely it becomes:
  - one output file per declared output, by name, with its digest and executable bit;
  - one file `.minibuild/blobs/<sha256>` per extra blob the action stored (an image's layers);
  - `.minibuild/entry.json`: the whole local entry as canonical JSON, in the CAS like any blob, so the
    discovered inputs (paths with content fingerprints) and warnings travel with it, verified by digest.
A server that validates entries (every file's blob must exist) sees an ordinary ActionResult. On the way
back the JSON is checked against the other files, so an entry that was tampered with, or cut short, is
refused rather than half used.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from minibuild.cache import EntryError, check_entry, is_digest
from minibuild.digest import canonical_json
from minibuild.remote_cache import Digest, OutputFile

ENTRY_PATH = ".minibuild/entry.json"
BLOB_PREFIX = ".minibuild/blobs/"
SCHEMA = 1

__all__ = ["BLOB_PREFIX", "ENTRY_PATH", "EntryError", "entry_blobs", "entry_digest", "entry_files", "parse_entry"]


def entry_files(entry: Mapping[str, Any], blob_sizes: Mapping[str, int]) -> tuple[list[OutputFile], bytes]:
    """The files of the remote entry for a local `entry`, and the bytes of its `.minibuild/entry.json` (whose
    file is among them). `blob_sizes`: the size of each extra blob, by local digest."""
    doc = {"schema": SCHEMA, "outputs": entry["outputs"], "discovered": entry.get("discovered", {}),
           "blobs": {d: blob_sizes[d] for d in entry.get("blobs", [])}, "warnings": entry.get("warnings", [])}
    data = canonical_json(doc).encode()
    files = [OutputFile(name, Digest.from_local(o["digest"], o["size"]), bool(o.get("executable")))
             for name, o in sorted(entry["outputs"].items())]
    files += [OutputFile(BLOB_PREFIX + Digest.from_local(d, size).hash, Digest.from_local(d, size))
              for d, size in sorted(doc["blobs"].items())]
    files.append(OutputFile(ENTRY_PATH, Digest.of_bytes(data)))
    return files, data


def entry_digest(files: Sequence[OutputFile]) -> Digest:
    """The digest of the `.minibuild/entry.json` of a remote entry."""
    for f in files:
        if f.path == ENTRY_PATH:
            return f.digest
    raise EntryError("the entry was not written by minibuild (it has no `.minibuild/entry.json`)")


def parse_entry(files: Sequence[OutputFile], data: bytes, outputs: Sequence[str]) -> dict[str, Any]:
    """The local entry a remote one stands for, after checking that its JSON, its files and the action's
    declared `outputs` all agree. EntryError otherwise."""
    try:
        doc = json.loads(data)
    except ValueError:
        raise EntryError("its `.minibuild/entry.json` is not JSON") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise EntryError("its `.minibuild/entry.json` is of another schema")
    try:
        described, _ = entry_files({**doc, "blobs": sorted(doc["blobs"])}, doc["blobs"])
    except (KeyError, TypeError, AttributeError):
        raise EntryError("its `.minibuild/entry.json` lacks a part") from None
    listed = {f for f in files if f.path != ENTRY_PATH}
    if listed != {f for f in described if f.path != ENTRY_PATH}:
        raise EntryError("its files disagree with its `.minibuild/entry.json`")
    if set(doc["outputs"]) != set(outputs):
        raise EntryError("its outputs are not the action's declared outputs")
    for f in described:
        if not is_digest(f.digest.local) or not isinstance(f.digest.size, int) or f.digest.size < 0:
            raise EntryError("it names a blob by something else than a sha256 digest and a size")
    entry = {"outputs": doc["outputs"], "blobs": sorted(doc["blobs"]), "discovered": doc.get("discovered"),
             "warnings": doc.get("warnings")}
    check_entry(entry)  # as a local entry is checked: it becomes one
    return entry


def entry_blobs(entry: Mapping[str, Any], blob_sizes: Mapping[str, int]) -> list[Digest]:
    """Every blob a local entry needs: its outputs' and its extra blobs."""
    found = {Digest.from_local(o["digest"], o["size"]) for o in entry["outputs"].values()}
    found |= {Digest.from_local(d, blob_sizes[d]) for d in entry.get("blobs", [])}
    return sorted(found)
