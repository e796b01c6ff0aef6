"""From requested labels to configured targets and the action graph.

Loads only the packages the requested targets (and their dependencies) live in, validates every
target's attributes against its rule, refuses cycles with the whole cycle and where each edge was
declared, and runs rule implementations in dependency order.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from minibuild.actions import Action
from minibuild.errors import InputError
from minibuild.label import Label, parse_pattern
from minibuild.portable import portable_path
from minibuild.registry import RuleRegistry
from minibuild.rule import Actions, Attrs, Rule, RuleContext, deps_of
from minibuild.workspace import Target, Workspace


@dataclass
class ConfiguredTarget:
    target: Target
    rule: Rule
    attrs: Attrs
    deps: list[tuple[str, Label]]  # (attribute path, dependency)
    providers: Sequence[Any] = ()
    actions: list[Action] = field(default_factory=list)

    @property
    def label(self) -> Label:
        return self.target.label


def source_date_epoch() -> int:
    """Timestamps in images come from SOURCE_DATE_EPOCH (reproducible-builds.org), default 0."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "0")
    if not value.isdigit():
        raise InputError(f"SOURCE_DATE_EPOCH must be a number of seconds, got `{value}`")
    return int(value)


def make_registry(workspace: Workspace) -> RuleRegistry:
    registry = RuleRegistry()
    registry.load_installed()
    for i, rel in enumerate(workspace.config.rules.load):
        try:
            registry.load_file(workspace.root, rel)
        except InputError as exc:  # say which entry of `rules.load`, and on which line
            raise InputError(exc.message, origin=workspace.config_origin(("rules", "load"), f"rules.load[{i}]"),
                             hint=exc.hint, causes=exc.causes) from None
    return registry


class Analysis:
    def __init__(self, workspace: Workspace, registry: RuleRegistry | None = None) -> None:
        self.workspace = workspace
        self.registry = registry or make_registry(workspace)
        workspace.use_macros(self.registry)  # macro tables become their targets as packages are loaded
        self.configured: dict[Label, ConfiguredTarget] = {}
        self.epoch = source_date_epoch()

    def expand(self, patterns: Sequence[str], package: str | None) -> list[Label]:
        """Labels and patterns from the command line -> the labels they name (sorted, unique)."""
        labels: set[Label] = set()
        for text in patterns:
            parsed = parse_pattern(text, package)
            if isinstance(parsed, Label):
                self.workspace.target(parsed)
                labels.add(parsed)
                continue
            packages = self.workspace.packages(parsed)
            if not packages:
                raise InputError(f"pattern `{text}` matches no package",
                                 hint="a package is a directory with a BUILD.toml under the workspace root")
            for pkg in packages:
                labels.update(t.label for t in self.workspace.load_package(pkg).values())
        return sorted(labels)

    def configure(self, label: Label) -> ConfiguredTarget:
        """Load and validate a target (not its dependencies)."""
        if label in self.configured:
            return self.configured[label]
        target = self.workspace.target(label)
        rule = self.registry.get(target.rule, target.origin())
        attrs = self.registry.validate(rule, target.attrs, target.origin)
        deps = []
        for path, dep in deps_of(attrs):
            try:
                deps.append((path, Label.parse(dep, label.package)))
            except InputError as exc:
                raise InputError(exc.message, origin=target.origin(path), hint=exc.hint) from None
        configured = ConfiguredTarget(target, rule, attrs, deps)
        self.configured[label] = configured
        return configured

    def order(self, roots: Sequence[Label]) -> list[ConfiguredTarget]:
        """Every target reachable from `roots`, dependencies first; a cycle is an error."""
        done: set[Label] = set()
        ordered: list[ConfiguredTarget] = []
        stack: list[tuple[Label, str]] = []  # (label, attribute it was reached through)
        on_stack: set[Label] = set()

        def visit(label: Label, via: str) -> None:
            if label in done:
                return
            if label in on_stack:
                self._cycle(stack, label, via)
            on_stack.add(label)
            stack.append((label, via))
            ct = self.configure(label)
            for path, dep in ct.deps:
                try:
                    visit(dep, path)
                except InputError as exc:
                    if exc.origin is None and not exc.causes:  # e.g. "no target": say where it was named
                        raise InputError(exc.message, origin=ct.target.origin(path), hint=exc.hint) from None
                    raise
            stack.pop()
            on_stack.discard(label)
            done.add(label)
            ordered.append(ct)

        for root in roots:
            visit(root, "")
        return ordered

    def _cycle(self, stack: list[tuple[Label, str]], label: Label, via: str) -> None:
        start = next(i for i, (lbl, _) in enumerate(stack) if lbl == label)
        chain = [lbl for lbl, _ in stack[start:]] + [label]
        edges = [*(p for _, p in stack[start + 1:]), via]
        causes = []
        for src, attr in zip(chain, edges, strict=False):
            origin = self.configured[src].target.origin(attr)
            causes.append(f"`{src}` depends on the next through `{attr}` ({origin.file}:{origin.line})")
        raise InputError(
            "dependency cycle: " + " -> ".join(str(lbl) for lbl in chain),
            causes=tuple(causes),
            hint="a target cannot depend on itself, directly or through others",
        )

    def analyse(self, roots: Sequence[Label]) -> list[ConfiguredTarget]:
        """Run the rule implementations of `roots` and everything they depend on."""
        ordered = self.order(roots)
        root = str(self.workspace.root)
        for ct in ordered:
            if ct.providers:
                continue
            actions = Actions(ct.label)
            deps = {str(dep): self.configured[dep].providers for _, dep in ct.deps}
            ctx = RuleContext(
                label=ct.label,
                attrs=ct.attrs,
                target_origin=ct.target.origin,
                deps=deps,
                actions=actions,
                # Relative to the workspace root when inside it: params hold it, and keys must not name a checkout.
                sysroot=portable_path(self.workspace.sysroot(), root),
                platforms={p: portable_path(self.workspace.sysroot(p), root) for p in self.workspace.config.platforms},
                package_dir=ct.label.package,
                epoch=self.epoch,
                package_sysroots={n: s.model_dump() for n, s in self.workspace.config.sysroots.items()},
            )
            providers = ct.rule.implementation(ctx)
            ct.providers = tuple(providers)
            ct.actions = list(actions.registered)
        return ordered
