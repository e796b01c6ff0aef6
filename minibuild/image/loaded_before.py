"""What a process loads before the libraries it dlopens (docs/loader.md#g19), for the closure action.

A library root's DT_NEEDED name that is not on its own search path is accepted when an object of the image
with that soname was loaded before it in the same process. Two sources say so: the image's `loaded_before`
attribute ({ library: [objects loaded before it] }), and the probe's traces (the order of each process's
opens). Until the probe has run, a match is assumed; the action resolves again with the traces when a
closure it keeps relied on one.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from minibuild import elf
from minibuild.elf.sysroot import Sysroot
from minibuild.errors import InputError
from minibuild.image.probe import ProbeResult

Evidence = Mapping[str, tuple[elf.LoadOrder, ...]]  # probe command -> the load orders its trace showed


def declared_orders(loaded_before: Sequence[tuple[str, Sequence[str]]], owner: str) -> tuple[elf.LoadOrder, ...]:
    """`loaded_before = { LIB = [OBJ, ...] }`: each OBJ is loaded before LIB, nothing said between the OBJs."""
    source = f"`loaded_before` of {owner}"
    return tuple(elf.LoadOrder((obj, lib), source) for lib, objs in loaded_before for obj in objs)


def probe_orders(results: Sequence[ProbeResult]) -> dict[str, tuple[elf.LoadOrder, ...]]:
    """The load orders each probe command's trace showed, by command."""
    return {shlex.join(r.command): tuple(elf.LoadOrder(paths, f"probe `{shlex.join(r.command)}`")
                                         for paths in r.loads) for r in results}


def with_orders(options: elf.ResolveOptions, declared: tuple[elf.LoadOrder, ...],
                evidence: Evidence | None) -> elf.ResolveOptions:
    """`options` with the load orders known so far; `evidence` None: the probe has not run, assume."""
    seen = tuple(o for orders in (evidence or {}).values() for o in orders)
    return dataclasses.replace(options, load_orders=declared + seen, assume_loaded=evidence is None)


def check_declared(loaded_before: Sequence[tuple[str, Sequence[str]]], owner: str, closure: elf.Closure,
                   fs: Sysroot) -> None:
    """Every path `loaded_before` names must be an object the image's loader maps."""
    objects = {o.realpath for o in closure.objects} | {o.path for o in closure.objects}
    for lib, objs in loaded_before:
        for path in (lib, *objs):
            if path not in objects and (fs.lookup(path).realpath or path) not in objects:
                raise InputError(f"`loaded_before` of `{owner}` names `{path}`, which is not a program or library "
                                 "of the image",
                                 hint="ship it with `binaries` or `trees` (or let `probe` find it); `loaded_before` "
                                      "only says in which order the image's own objects are loaded")


def matches_document(closure: elf.Closure) -> list[dict[str, str | None]]:
    """closure.json's `already_loaded`: each name a library root got from an object loaded before it."""
    return [{"requester": m.requester, "name": m.name, "provider": m.provider, "root": m.root, "by": m.by,
             "source": m.source, "reason": m.reason} for m in closure.already_loaded]


def assumed(doc: Mapping[str, Any]) -> bool:
    """Whether a closure document relied on a match made before the probe had run."""
    return any(m["source"] is None for m in doc.get("already_loaded", ()))
