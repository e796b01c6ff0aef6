"""Views of a Closure for people and tools: `why`, the `closure --json` shape, an lddtree-like tree."""

from __future__ import annotations

from collections.abc import Mapping

from minibuild.elf.model import Closure, LoadedObject
from minibuild.errors import ElfError


def _objects_by_path(closure: Closure) -> dict[str, LoadedObject]:
    out: dict[str, LoadedObject] = {}
    for o in closure.objects:
        out.setdefault(o.path, o)
    return out


def why(closure: Closure, path: str) -> list[str]:
    """The chain that brought in-image `path` into the closure, root first."""
    objs = _objects_by_path(closure)
    entries = {e.path: e for e in closure.entries}
    obj = objs.get(path)
    if obj is None:
        obj = next((o for o in closure.objects if o.realpath == path), None)
    entry = entries.get(path)
    if obj is None and entry is None:
        raise ElfError(f"`{path}` is not part of the closure of {', '.join(f'`{r}`' for r in closure.roots)}")
    if obj is None and entry is not None and entry.via in objs:
        obj = objs[entry.via]
    lines: list[str] = []
    if obj is not None:
        lines = _chain(closure, obj, objs)
    elif entry is not None and entry.via:
        lines = _script_chain(closure, entry.via)
    if obj is not None and path not in (obj.path,):
        if path == obj.realpath:
            lines.append(f"-> symlink target {path}")
        elif entry is not None and entry.kind == "symlink":
            lines.append(f"-> symlink on the path to {obj.path}: {path} -> {entry.target}")
        elif entry is not None and entry.kind == "dir":
            lines.append(f"-> directory crossed by `..` on the way to {obj.path}: {path}")
    elif obj is None and entry is not None and entry.kind == "symlink":
        lines.append(f"-> symlink: {path} -> {entry.target}")
    if obj is not None:
        lines += [f"-> DT_NEEDED {m.name} of {m.requester}: {m.reason}" for m in closure.already_loaded
                  if obj.path in (m.requester, m.provider)]
    return lines


def _chain(closure: Closure, obj: LoadedObject, objs: dict[str, LoadedObject]) -> list[str]:
    steps: list[LoadedObject] = [obj]
    seen = {obj.path}
    while steps[-1].loader is not None and steps[-1].loader in objs and steps[-1].loader not in seen:
        steps.append(objs[steps[-1].loader])
        seen.add(steps[-1].path)
    steps.reverse()
    root = steps[0]
    lines = _script_chain(closure, root.path) or [f"{root.path} (binary)"]
    for o in steps[1:]:
        if o.is_interpreter:
            lines.append(f"-> PT_INTERP -> {o.path}")
        elif o.variant_of is not None or o.via in ("hwcaps", "platform"):
            kind = "glibc-hwcaps variant" if o.via == "hwcaps" else "`$PLATFORM` alternative"
            lines.append(f"-> {kind} of {o.names[0] if o.names else o.variant_of} -> {o.path}")
        else:
            lines.append(f"-> DT_NEEDED {o.names[0] if o.names else o.path} -> {o.path}")
    return lines


def _script_chain(closure: Closure, program: str) -> list[str]:
    """How a root program was reached through `#!` lines (empty if it was asked for directly)."""
    for script, target in closure.scripts:
        if target == program:
            return [*(_script_chain(closure, script) or [f"{script} (script)"]), f"-> #! {target}"]
    return []


def closure_json(closures: Mapping[str, Closure]) -> dict:
    """The `minibuild closure --json` document: one object per requested path."""
    out: dict[str, dict] = {}
    for key, c in closures.items():
        needed: dict[str, str | None] = {}
        for o in c.objects:
            if o.variant_of is not None:
                continue
            for name, target in o.needed:
                if name not in needed or needed[name] is None:
                    needed[name] = target
        interpreter = next((i for _, i in c.interpreters if i), None)
        out[key] = {
            "interpreter": interpreter,
            "needed": needed,
            "files": [e.path for e in c.entries],
            "missing": sorted({name for _, name in c.missing}),
            "architecture": c.architecture,
            "variant": c.variant,
            "warnings": list(c.warnings),
        }
    return out


def closure_tree(closure: Closure) -> list[dict]:
    """lddtree-like trees, one per root: {"label": str, "children": [...]}; each object expanded once."""
    objs = _objects_by_path(closure)
    expanded: set[str] = set()

    def node(o: LoadedObject, label: str) -> dict:
        children: list[dict] = []
        if o.path not in expanded:
            expanded.add(o.path)
            for name, target in o.needed:
                if target is None:
                    children.append({"label": f"{name} => not found", "children": []})
                elif target in objs and not objs[target].is_interpreter:
                    children.append(node(objs[target], f"{name} => {target}"))
                else:
                    children.append({"label": f"{name} => {target}", "children": []})
        return {"label": label, "children": children}

    interps = dict(closure.interpreters)

    def program(path: str, depth: int = 0) -> dict:
        targets = [t for s, t in closure.scripts if s == path]
        if targets and depth < 8:
            return {"label": f"{path} (script)", "children": [program(t, depth + 1) for t in targets]}
        interp = interps.get(path)
        suffix = f" (interpreter => {interp})" if interp else " (static)"
        o = objs.get(path)
        return node(o, path + suffix) if o is not None else {"label": path + suffix, "children": []}

    trees = [program(root) for root in closure.roots]
    variants = [v for v in closure.objects if v.variant_of is not None]
    if trees and variants:
        trees[-1]["children"] += [{"label": f"{v.path} (variant of {v.variant_of})", "children": []}
                                  for v in variants]
    return trees
