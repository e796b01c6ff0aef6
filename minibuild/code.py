"""The code an action can run, as a digest for its key.

An action's key covers its function's module and every module of the project that module imports,
directly or through others (imports inside functions included), found by reading the import
statements of the source files: no module is imported to find them. "The project" is the function's
own top-level package (a plugin's, or a workspace's rule file) plus `minibuild` and `minibuild_rules`.
Editing a help string in the command line, or any module an action cannot reach, keeps every key.
Code outside those packages (pydantic, the standard library) is covered by an action's `version`.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import re
import sys

# `from a.b import c, d`, `from a.b import (c,\n d)` and `import a.b, e`; `#` comments cut a line.
_IMPORT = re.compile(
    r"^[ \t]*(?:from[ \t]+([\w.]+)[ \t]+import[ \t]+(\([^)]*\)|[^\n#;]+)|import[ \t]+([^\n#;]+))", re.M)
_ENGINE_PACKAGES = ("minibuild", "minibuild_rules")


@functools.cache
def _locations(top: str) -> tuple[str, ...]:
    """The directories of a top-level package (one for a plain package), or () for a module or nothing."""
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return ()
    return tuple(spec.submodule_search_locations or ()) if spec else ()


def module_file(name: str) -> str | None:
    """The source file of module `name`, without importing it."""
    module = sys.modules.get(name)
    path = getattr(module, "__file__", None)
    if path and path.endswith(".py"):
        return path
    top, _, rest = name.partition(".")
    for location in _locations(top):
        base = os.path.join(location, *rest.split(".")) if rest else location
        for candidate in (base + ".py", os.path.join(base, "__init__.py")):
            if os.path.isfile(candidate):
                return candidate
    return None


def _imported(text: str) -> set[str]:
    """Every module name an import statement of `text` may load: `from a.b import c` gives a, a.b and a.b.c."""
    names: set[str] = set()
    for m in _IMPORT.finditer(text):
        if m.group(1):
            base = m.group(1)
            names.add(base)
            for item in m.group(2).strip("()").replace("\n", " ").split(","):
                word = item.split(" as ")[0].strip()
                if word and word != "*":
                    names.add(f"{base}.{word}")
        else:
            names.update(item.split(" as ")[0].strip() for item in m.group(3).split(","))
    # Importing a.b.c runs a/__init__.py and a/b/__init__.py first.
    return {".".join(n.split(".")[:i]) for n in names if n for i in range(1, n.count(".") + 2)}


@functools.cache
def module_closure(module: str) -> tuple[tuple[str, str], ...]:
    """(module name, source file) of `module` and every project module it imports, transitively; sorted."""
    tops = {module.split(".")[0], *_ENGINE_PACKAGES}
    seen: dict[str, str] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = module_file(name)
        if path is None:
            continue  # `from a import b` where b is a function, not a module
        seen[name] = path
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        todo += [n for n in _imported(text) if n.split(".")[0] in tops and n not in seen]
    return tuple(sorted(seen.items()))


# Digests a stored analysis vouches for (analysis_cache.py): it was computed from files whose digests the
# analysis checked before it was used, so a no-op build reads no source file to key its actions.
_STORED: dict[str, str] = {}


def remember_digests(digests: dict[str, str]) -> None:
    _STORED.update(digests)


@functools.cache
def code_digest(function: str) -> str:
    """The digest of the source files an action function ("module:qualname") can run."""
    stored = _STORED.get(function)
    if stored is not None:
        return stored
    h = hashlib.sha256()
    for name, path in module_closure(function.partition(":")[0]):
        with open(path, "rb") as f:
            h.update(name.encode() + b"\0" + hashlib.sha256(f.read()).digest())
    return h.hexdigest()[:16]
