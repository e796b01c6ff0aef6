"""Rule kinds by name: from installed packages (the `minibuild.rules` entry-point group, the built-in rules
included) and from a workspace's own files (`[rules] load`)."""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from minibuild.errors import InputError, Origin
from minibuild.macros import expand_table
from minibuild.rule import Attrs, Macro, Rule
from minibuild.workspace import Target, format_validation_error

ENTRY_POINT_GROUP = "minibuild.rules"
BUILTIN_DISTRIBUTION = "minibuild"  # its entry points are the built-in rules


def import_rule_file(path: str, module_name: str) -> Any:
    """Import a workspace's rule file under `module_name`, so its action functions can be found by name."""
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


@dataclass(frozen=True)
class RuleSource:
    """Where a rule kind (or macro) comes from: minibuild itself, an installed plugin, or a workspace file."""

    kind: str  # "built-in", "plugin" or "workspace"
    where: str  # the entry point's value (`pkg.module:attr`), or the workspace file
    package: str = ""  # the distribution, for "built-in" and "plugin"
    version: str = ""

    def __str__(self) -> str:
        if self.kind == "built-in":
            return "minibuild (built in)"
        if self.kind == "plugin":
            return f"plugin `{self.package} {self.version}`"
        return f"`{self.where}`"


def _entry_point_source(ep: EntryPoint) -> RuleSource:
    dist = getattr(ep, "dist", None)
    name, version = (dist.name, dist.version) if dist is not None else ("an installed package", "?")
    kind = "built-in" if name == BUILTIN_DISTRIBUTION else "plugin"
    return RuleSource(kind, ep.value.strip(), name, version)


def _conflict(name: str, new: RuleSource, old: RuleSource) -> InputError:
    """Two sources define the rule kind `name`: one message naming both."""
    if new.kind == "workspace":
        return InputError(f"rule `{name}` from `{new.where}` is already defined by {old}",
                          hint="give the custom rule another name")
    if "built-in" in (old.kind, new.kind):
        plugin = new if old.kind == "built-in" else old
        return InputError(f"{plugin} defines the rule `{name}` (`{plugin.where}`), which is built into minibuild",
                          hint=f"rename `{name}` in the `{ENTRY_POINT_GROUP}` entry points of `{plugin.package}`, "
                          f"or uninstall it: `pip uninstall {plugin.package}`")
    first, second = sorted((old, new), key=lambda s: (s.package, s.where))
    return InputError(f"rule `{name}` is defined by two installed packages: `{first.package} {first.version}` "
                      f"(`{first.where}`) and `{second.package} {second.version}` (`{second.where}`)",
                      hint=f"uninstall one of them (`pip uninstall {second.package}`), or rename the rule in its "
                      f"`{ENTRY_POINT_GROUP}` entry points")


def _import_plugin(ep: EntryPoint, source: RuleSource) -> Rule | Macro:
    """The rule (or macro) an entry point names: `kind = "pkg.module"` names `pkg.module.kind`,
    `kind = "pkg.module:attr"` names `pkg.module.attr`."""
    module_name, _, attr = ep.value.partition(":")
    module_name, attr = module_name.strip(), (attr.strip() or ep.name)
    try:
        value: Any = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # a broken plugin: bad input, not our crash (a broken built-in is)
        if source.kind == "built-in":
            raise
        raise InputError(f"cannot load {source}: importing `{module_name}` failed: {type(exc).__name__}: {exc}",
                         hint=f"reinstall or uninstall `{source.package}` (`pip uninstall {source.package}`)") from None
    found = "module"
    for part in attr.split("."):
        value = getattr(value, part, None)
        if value is None:
            found = "nothing"
            break
    if not isinstance(value, Rule | Macro):
        what = f"`{module_name}` has no `{attr}`" if found == "nothing" else \
            f"`{module_name}.{attr}` is a `{type(value).__name__}`, not a rule or macro"
        raise InputError(
            f"the entry point `{ep.name} = \"{ep.value}\"` of {source} names no rule: {what}",
            hint=f"in `[project.entry-points.\"{ENTRY_POINT_GROUP}\"]` the name is the rule kind and the value a "
            "module defining a rule of that name (`hello = \"pkg.rules\"`) or `module:attribute`")
    return value


class RuleRegistry:
    """Rule kinds and macros by name: the built-in ones, those of installed plugins and those a workspace loads
    with `[rules] load`. One name, one source: a second definition is an error naming both."""

    def __init__(self) -> None:
        self.rules: dict[str, Rule] = {}
        self.macros: dict[str, Macro] = {}
        self.sources: dict[str, RuleSource] = {}
        self.user_modules: dict[str, str] = {}  # module name -> file, for rules loaded from the workspace

    def kinds(self) -> dict[str, Rule | Macro]:
        """Every rule and macro, by name, sorted."""
        kinds: dict[str, Rule | Macro] = {**self.rules, **self.macros}
        return dict(sorted(kinds.items()))

    def add(self, name: str, value: Rule | Macro, source: RuleSource) -> None:
        if name in self.sources and self.sources[name] != source:
            raise _conflict(name, source, self.sources[name])
        if isinstance(value, Macro):
            self.macros[name] = Macro(value.implementation, value.attrs, value.doc, name)
        else:
            self.rules[name] = Rule(value.implementation, value.attrs, value.doc, name)
        self.sources[name] = source

    def add_module(self, module: Any, source: RuleSource) -> None:
        """Every public rule and macro of a workspace's rule file, named as the variable it is assigned to."""
        for name, value in vars(module).items():
            if isinstance(value, Rule | Macro) and not name.startswith("_"):
                self.add(name, value, source)

    def load_installed(self) -> None:
        """Every entry point of the `minibuild.rules` group: the built-in rules and those of plugins. Its name is
        the rule kind; two packages naming one kind is an error, found before anything is imported."""
        found: dict[str, tuple[EntryPoint, RuleSource]] = {}
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: (ep.name, ep.value)):
            source = _entry_point_source(ep)
            if ep.name in found and found[ep.name][1] != source:
                raise _conflict(ep.name, source, found[ep.name][1])
            found[ep.name] = (ep, source)
        for name, (ep, source) in found.items():
            self.add(name, _import_plugin(ep, source), source)

    def load_file(self, root: Path, rel: str) -> None:
        path = (root / rel).resolve()
        try:
            found = root.resolve() in path.parents and path.is_file()
        except OSError:  # a name too long for the file system
            found = False
        if not found:
            raise InputError(f"cannot load rules from `{rel}`: no such file in the workspace",
                             origin=Origin(file="workspace.toml", attribute="rules.load"))
        # Unique per file (a/b.py and a_b.py must not collide) and stable, so action functions
        # defined in the file can be named "module:function" and found by the executor.
        stem = re.sub(r"\W", "_", path.stem)
        module_name = f"minibuild_user_rules.{stem}_{hashlib.sha256(rel.encode()).hexdigest()[:12]}"
        try:
            module = import_rule_file(str(path), module_name)
        except Exception as exc:  # a user's file: report it as bad input, not as our crash
            raise InputError(f"loading rules from `{rel}` failed: {type(exc).__name__}: {exc}",
                             origin=Origin(file="workspace.toml", attribute="rules.load")) from None
        self.add_module(module, RuleSource("workspace", rel))
        self.user_modules[module_name] = str(path)

    def get(self, name: str, origin: Origin) -> Rule:
        if name not in self.rules:
            if name in self.macros:  # a macro's table is expanded when its package is loaded, never configured
                raise InputError(f"`{name}` is a macro, and a macro cannot declare a target of another macro",
                                 origin=origin)
            kinds = list(self.kinds())
            close = difflib.get_close_matches(name, kinds, n=1)
            raise InputError(
                f"unknown rule `{name}`", origin=origin,
                hint=f"did you mean `{close[0]}`?" if close
                else f"known rules: {', '.join(f'`{n}`' for n in kinds)}",
            )
        return self.rules[name]

    def is_macro(self, kind: str) -> bool:
        return kind in self.macros

    def expand(self, table: Target) -> list[Target]:
        """The targets a macro table makes (`minibuild.macros`)."""
        return expand_table(self, self.macros[table.rule], table)

    def validate(self, rule: Rule | Macro, raw: Mapping[str, Any],
                 target_origin: Callable[[str | None], Origin]) -> Attrs:
        try:
            return rule.attrs.model_validate(dict(raw))
        except ValidationError as exc:
            path, message, hint = format_validation_error(exc, list(rule.attrs.model_fields))
            raise InputError(message, origin=target_origin(path), hint=hint) from None


