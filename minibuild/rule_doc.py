"""What a rule kind (or macro) says about itself: its doc and, for each attribute, its type, default and doc.

An attribute's doc is the string literal under it in the attribute model (pydantic's attribute docstrings), or a
`Field(description=...)`. The docstrings are read from the source here, when `minibuild rules` (or the README
check) asks, and never when a rule module is imported, which every analysis does.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import sys
import textwrap
import types
import typing
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from minibuild.rule import Macro, Rule

# Names shown for the attribute types the engine defines; other aliases (`Mode`) are shown in lower case.
_ALIASES = {"PathOrLabel": "path or label", "LabelAttr": "label"}
# Defaults shown as they are written in TOML, by alias: a mode is `"0644"`, not 420.
_DEFAULT_FORMATS = {"Mode": lambda v: f'"{v:04o}"' if isinstance(v, int) else json.dumps(v)}


def attribute_docs(model: type[BaseModel]) -> dict[str, str]:
    """Attribute name -> doc, for `model` and the classes it inherits from."""
    docs: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or cls is BaseModel:
            continue
        try:
            source = textwrap.dedent(inspect.getsource(cls))
        except (OSError, TypeError):
            continue
        body = next((n.body for n in ast.parse(source).body if isinstance(n, ast.ClassDef)), [])
        for node, after in zip(body, body[1:], strict=False):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)):
                docs[node.target.id] = " ".join(inspect.cleandoc(after.value.value).split())
    for name, info in model.model_fields.items():
        if info.description:
            docs[name] = " ".join(info.description.split())
    return docs


def _aliases(model: type) -> list[tuple[Any, str]]:
    """The `Annotated` aliases (`PathOrLabel`, `Mode`) visible in the modules of `model` and its bases."""
    found = []
    for cls in model.__mro__:
        for name, value in vars(sys.modules.get(cls.__module__, types.ModuleType("?"))).items():
            if get_origin(value) is Annotated and not name.startswith("_"):
                found.append((value, name))
    return found


def _alias_name(tp: Any, aliases: list[tuple[Any, str]]) -> str | None:
    return next((name for value, name in aliases if value == tp), None)


def type_name(tp: Any, aliases: list[tuple[Any, str]]) -> str:
    """A short, readable name of an attribute type: `list[path or label]`, `"shared" | "single"`, `table`."""
    alias = _alias_name(tp, aliases)
    if alias is not None:
        return _ALIASES.get(alias) or re.sub(r"(?<=[a-z])(?=[A-Z])", " ", alias).lower()
    origin, args = get_origin(tp), get_args(tp)
    if origin is Annotated:
        return type_name(args[0], aliases)
    if origin in (Union, types.UnionType):
        return " | ".join(type_name(a, aliases) for a in args if a is not type(None))
    if origin is Literal:
        return " | ".join(json.dumps(a) for a in args)
    if origin in (list, tuple, set, frozenset):
        return f"list[{type_name(args[0], aliases)}]" if args else "list"
    if origin is dict:
        return f"dict[{type_name(args[0], aliases)}, {type_name(args[1], aliases)}]" if args else "dict"
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return "table"
    return getattr(tp, "__name__", str(tp))


def _nested_model(tp: Any) -> type[BaseModel] | None:
    """The attribute model inside a type (`list[FileSpec]`, `MetadataSpec | None`), if there is one."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp
    for arg in get_args(tp):
        found = _nested_model(arg)
        if found is not None:
            return found
    return None


def _default(info: Any) -> tuple[bool, Any]:
    """(required, default as a JSON value)."""
    if info.is_required():
        return True, None
    value = info.default_factory() if info.default_factory is not None else info.default
    return False, json.loads(json.dumps(value, default=str))


def describe_attributes(model: type[BaseModel]) -> list[dict[str, Any]]:
    """Each attribute of `model`, in declaration order: name, type, required, default (and how TOML writes it),
    doc, and the attributes of a nested table."""
    hints = typing.get_type_hints(model, include_extras=True)
    docs = attribute_docs(model)
    aliases = _aliases(model)
    out = []
    for name, info in model.model_fields.items():
        tp = hints.get(name, info.annotation)
        required, default = _default(info)
        fmt = next((_DEFAULT_FORMATS[a] for v, a in aliases if a in _DEFAULT_FORMATS and _contains(tp, v)), None)
        shown = "required" if required else "unset" if default is None else (fmt or json.dumps)(default)
        # An attribute whose TOML key is a Python keyword (`from`) is a field with that alias.
        entry: dict[str, Any] = {"name": info.alias or name, "type": type_name(tp, aliases), "required": required,
                                 "default": default, "default_toml": shown, "doc": docs.get(name, "")}
        nested = _nested_model(tp)
        if nested is not None:
            entry["attributes"] = describe_attributes(nested)
        out.append(entry)
    return out


def _contains(tp: Any, alias: Any) -> bool:
    return tp == alias or any(_contains(a, alias) for a in get_args(tp))


def describe(name: str, kind: Rule | Macro, source: dict[str, str]) -> dict[str, Any]:
    """A rule kind or macro as `minibuild rules --json` shows it."""
    return {
        "name": name,
        "kind": "macro" if isinstance(kind, Macro) else "rule",
        "source": source,
        "doc": " ".join(inspect.cleandoc(kind.doc).split()) if kind.doc else "",
        "attributes": describe_attributes(kind.attrs),
    }
