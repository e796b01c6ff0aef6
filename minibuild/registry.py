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
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from minibuild.errors import InputError, Origin
from minibuild.rule import Attrs, Rule
from minibuild.workspace import format_validation_error

ENTRY_POINT_GROUP = "minibuild.rules"


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


class RuleRegistry:
    """Rule kinds by name: the built-in ones and those a workspace loads with `[rules] load`."""

    def __init__(self) -> None:
        self.rules: dict[str, Rule] = {}
        self.sources: dict[str, str] = {}
        self.user_modules: dict[str, str] = {}  # module name -> file, for rules loaded from the workspace

    def add_module(self, module: Any, source: str) -> None:
        for name, value in vars(module).items():
            if isinstance(value, Rule) and not name.startswith("_"):
                if name in self.rules and self.sources[name] != source:
                    raise InputError(
                        f"rule `{name}` from `{source}` is already defined by `{self.sources[name]}`",
                        hint="give the custom rule another name",
                    )
                self.rules[name] = Rule(value.implementation, value.attrs, value.doc, name)
                self.sources[name] = source

    def load_installed(self) -> None:
        """Every module named in the `minibuild.rules` entry-point group: the built-in rules and plugins."""
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: (ep.value, ep.name)):
            try:
                module = importlib.import_module(ep.value.partition(":")[0])
            except Exception as exc:  # an installed plugin that is broken: bad input, not our crash
                dist = ep.dist.name if ep.dist else "an installed package"
                raise InputError(f"loading rules `{ep.value}` from `{dist}` failed: {type(exc).__name__}: {exc}",
                                 hint=f"reinstall or uninstall `{dist}`") from None
            self.add_module(module, module.__name__)

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
        self.add_module(module, rel)
        self.user_modules[module_name] = str(path)

    def get(self, name: str, origin: Origin) -> Rule:
        if name not in self.rules:
            close = difflib.get_close_matches(name, list(self.rules), n=1)
            raise InputError(
                f"unknown rule `{name}`", origin=origin,
                hint=f"did you mean `{close[0]}`?" if close
                else f"known rules: {', '.join(f'`{n}`' for n in sorted(self.rules))}",
            )
        return self.rules[name]

    def validate(self, rule: Rule, raw: Mapping[str, Any], target_origin: Callable[[str | None], Origin]) -> Attrs:
        try:
            return rule.attrs.model_validate(dict(raw))
        except ValidationError as exc:
            path, message, hint = format_validation_error(exc, list(rule.attrs.model_fields))
            raise InputError(message, origin=target_origin(path), hint=hint) from None


