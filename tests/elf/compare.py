"""Put minibuild's closure and the loader's trace in one shape (docs/loader.md#sec-11, step 5).

{name: path} for every object, under the first name it was mapped by (None when never found), plus
a `<name> (not found somewhere)` key for each name some lookup failed on: the loader's trace can
print a name as `not found` for one requester and find it for another (DF_1_NODEFLIB).
"""

from __future__ import annotations

import os

from minibuild.elf import Closure
from tests.elf.oracle import Trace


def _norm(path: str | None, cwd: str, strict: bool) -> str | None:
    if path is None:
        return None
    if strict:
        return path
    return os.path.realpath(os.path.join(cwd, path))


def ours(closure: Closure, loader_real: str, cwd: str = "/", strict: bool = False) -> dict[str, str | None]:
    """Like the loader's trace: every mapped object once, under the first name it was loaded by."""
    out: dict[str, str | None] = {}
    roots = set(closure.roots)
    for o in closure.objects:
        if o.variant_of is not None or o.path in roots or o.is_interpreter or not o.names:
            continue
        name = o.names[0]
        if "/" in name:
            name = o.path  # a slashed DT_NEEDED is printed as the (DST-expanded) path it opened
        out.setdefault(name, o.path)
    missing = {name for o in closure.objects for name, target in o.needed if target is None}
    for name in missing:
        out.setdefault(name, None)
    found = {n: _norm(t, cwd, strict) for n, t in out.items()
             if t is None or os.path.realpath(os.path.join(cwd, t)) != loader_real}
    return {**found, **{f"{n} (not found somewhere)": None for n in missing}}


def theirs(trace: Trace, loader_real: str, cwd: str = "/", strict: bool = False) -> dict[str, str | None]:
    if trace.static:
        return {}
    out = {n: _norm(t, cwd, strict) for n, t in trace.needed.items()
           if t is None or os.path.realpath(os.path.join(cwd, t)) != loader_real}
    for b in trace.bare:
        if os.path.realpath(os.path.join(cwd, b)) != loader_real:
            out[b] = _norm(b, cwd, strict)
    return {**out, **{f"{n} (not found somewhere)": None for n in trace.missing}}
