"""`minibuild rules`: every rule kind and macro BUILD files can use, where it comes from (built in, a plugin
package and its version, a workspace file), its doc and its attributes with type, default and doc.

`--json` for machines; `--markdown` for documentation (the README's table of the built-in rules is this output,
and tests/engine/test_rules_doc.py checks that it still is).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import textwrap
from collections.abc import Iterator, Sequence
from typing import Any

from minibuild.errors import InputError
from minibuild.workspace import Workspace, find_root


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="*", metavar="RULE", help="only these rule kinds or macros (default: all)")
    form = p.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help='one JSON object on stdout: {"rules": [...]}')
    form.add_argument("--markdown", action="store_true", help="a Markdown table of attributes per rule")


def run(args: argparse.Namespace) -> int:
    rules = describe_rules(args.names)
    if args.json:
        json.dump({"rules": rules}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif args.markdown:
        sys.stdout.write(markdown(rules))
    else:
        width = max(60, min(shutil.get_terminal_size().columns, 120))
        sys.stdout.write("\n".join(line for r in rules for line in _text(r, width)))
    return 0


def describe_rules(names: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The rule kinds and macros known here (in a workspace, its `[rules] load` files too), as `--json` gives
    them: all, by name, or those of `names` in that order."""
    # lazy: pydantic and the rule modules, loaded only to describe them
    from minibuild.analysis import make_registry
    from minibuild.registry import RuleRegistry
    from minibuild.rule_doc import describe

    try:
        root = find_root()
    except InputError:  # outside a workspace: the installed rules only
        registry = RuleRegistry()
        registry.load_installed()
    else:
        registry = make_registry(Workspace(root))
    kinds = registry.kinds()
    unknown = [n for n in names if n not in kinds]
    if unknown:
        raise InputError(f"unknown rule `{unknown[0]}`",
                         hint=f"known rules: {', '.join(f'`{n}`' for n in kinds)}")
    return [describe(name, kinds[name], _source(registry.sources[name])) for name in dict.fromkeys(names or kinds)]


def _source(source: Any) -> dict[str, str]:
    if source.kind == "workspace":
        return {"kind": "workspace", "where": source.where}
    return {"kind": source.kind, "package": source.package, "version": source.version, "where": source.where}


def source_text(source: dict[str, str]) -> str:
    if source["kind"] == "built-in":
        return f"built in ({source['package']} {source['version']})"
    if source["kind"] == "plugin":
        return f"plugin {source['package']} {source['version']} ({source['where']})"
    return f"workspace file {source['where']}"


def _attributes(attrs: list[dict[str, Any]], prefix: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, attribute) of every attribute, those of nested tables after theirs: `files`, `files[].src`..."""
    for a in attrs:
        path = prefix + a["name"]
        yield path, a
        if "attributes" in a:
            yield from _attributes(a["attributes"], path + ("[]." if a["type"].startswith("list[") else "."))


def _text(rule: dict[str, Any], width: int) -> Iterator[str]:
    yield f"{rule['name']}: {rule['kind']}, {source_text(rule['source'])}"
    if rule["doc"]:
        yield from textwrap.wrap(rule["doc"], width, initial_indent="    ", subsequent_indent="    ")
    for path, a in _attributes(rule["attributes"]):
        default = " (required)" if a["required"] else f" = {a['default_toml']}"
        yield f"    {path}: {a['type']}{default}"
        yield from textwrap.wrap(a["doc"], width, initial_indent=" " * 8, subsequent_indent=" " * 8)
    yield ""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown(rules: list[dict[str, Any]]) -> str:
    """One section per rule: its doc and a table of its attributes (nested ones as `files[].src`)."""
    out = []
    for rule in rules:
        origin = "" if rule["source"]["kind"] == "built-in" else f" ({source_text(rule['source'])})"
        out += [f"#### `{rule['name']}`{' (macro)' if rule['kind'] == 'macro' else ''}{origin}", ""]
        if rule["doc"]:
            out += [rule["doc"], ""]
        out += ["| attribute | type | default | |", "|---|---|---|---|"]
        for path, a in _attributes(rule["attributes"]):
            default = "required" if a["required"] else f"`{a['default_toml']}`" if a["default"] is not None \
                else "unset"
            out.append(f"| `{path}` | {_cell(a['type'])} | {_cell(default)} | {_cell(a['doc'])} |")
        out.append("")
    return "\n".join(out)
