"""Everything minibuild shows a person, on stderr: progress, tables, trees, errors. The only rich user.

stdout is for data (`--json`, `query`, `graph --format dot`); it is written by the commands directly.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from minibuild.cli import startup
from minibuild.errors import MinibuildError


def _width() -> int | None:
    # Off a terminal rich assumes 80 columns and wraps tables; logs read better wide.
    if sys.stderr.isatty():
        return None
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() else 160


console = Console(stderr=True, highlight=False, no_color=bool(os.environ.get("NO_COLOR")) or None, width=_width())


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def error(exc: MinibuildError) -> None:
    """`error: ...`, then where, the causes and a hint, readable without colour."""
    console.print(Text("error: ", style="bold red") + Text(exc.message))
    _details(exc)


def _details(exc: MinibuildError) -> None:
    """Where, the causes and the hint of an error, one line each."""
    if exc.origin:
        console.print(Text(f"  --> {exc.origin}", style="cyan"))
    for cause in exc.causes:
        console.print(Text(f"  caused by: {cause}"))
    if exc.hint:
        console.print(Text("hint: ", style="bold yellow") + Text(exc.hint))


def build_failure(failures: list[tuple[Any, BaseException]]) -> None:
    for label, exc in failures:
        console.print(Text("error: ", style="bold red") + Text(f"cannot build `{label}`"))
        if isinstance(exc, MinibuildError):
            console.print(Text(f"  caused by: {exc.message}"))
            _details(exc)
        else:
            bug(exc)


def bug(exc: BaseException) -> None:
    console.print(Text("error: internal error in minibuild (this is a bug; please report it)", style="bold red"))
    console.print(Text("".join(traceback.format_exception(exc)).rstrip()), soft_wrap=True)


def warn(message: str) -> None:
    console.print(Text("warning: ", style="bold yellow") + Text(message))


def info(message: str) -> None:
    console.print(Text(message))


def print_tree(tree: dict[str, Any]) -> None:
    """A nested {"label": str, "children": [...]} as a rich tree."""

    def add(node: Tree, item: dict[str, Any]) -> None:
        for child in item.get("children", []):
            add(node.add(escape(child["label"])), child)

    root = Tree(escape(tree["label"]))
    add(root, tree)
    console.print(root)


def image_report(label: str, image: dict[str, Any], rebuilt: bool) -> None:
    table = Table(title=f"{label}  ->  {image['tag']}", title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("path")
    table.add_column("bytes", justify="right")
    table.add_column("why")
    for f in image["files"]:
        if f["kind"] == "dir":
            continue
        path = f["path"] + (f" -> {f['target']}" if f.get("target") else "")
        table.add_row(escape(path), f"{f['size']:,}" if f["kind"] == "file" else "", escape(f["reason"]))
    console.print(table)
    count = sum(1 for f in image["files"] if f["kind"] == "file")
    console.print(
        f"  {count} files, {image['size']:,} bytes ({human(image['size'])}) uncompressed, "
        f"{image['compressed_size']:,} bytes ({human(image['compressed_size'])}) in "
        f"{len(image['layers'])} compressed layers; {'rebuilt' if rebuilt else 'up to date'}"
    )
    console.print(f"  digest {image['digest']}")
    console.print(f"  oci    {image['oci']}/   tarball {image['tarball']}")


class Progress:
    """Live progress on a terminal; one line per finished action otherwise (or with `plain`)."""

    def __init__(self, plain: bool) -> None:
        self.plain = plain or not console.is_terminal
        self.done = 0
        self.cached = 0
        self.total = 0
        self.running: dict[str, float] = {}
        self.details: dict[str, str] = {}  # what a running action said of its progress
        self.lock = threading.Lock()
        self.live: Live | None = None
        self.started = time.monotonic()

    def event(self, event: Any) -> None:
        startup.release_collector()  # the build is under way: start-up is over
        with self.lock:
            a = event.action
            if event.kind == "start":
                self.running[a.id] = time.monotonic()
            elif event.kind == "progress":
                self.details[a.id] = event.detail
            elif event.kind in ("done", "cached", "failed", "skipped"):
                self.running.pop(a.id, None)
                self.details.pop(a.id, None)
                self.done += 1
                self.cached += event.kind == "cached"
                if event.kind == "done" and self.plain:
                    r = event.result
                    console.print(f"[{self.done}] {escape(a.description)} ({r.seconds:.2f}s): {escape(r.reason)}")
                elif event.kind == "failed" and self.plain:
                    console.print(f"[{self.done}] {escape(a.description)}: failed")
            if self.live:
                self.live.update(self._render())

    def _render(self) -> Text:
        now = time.monotonic()
        lines = [f"building: {self.done} actions done ({self.cached} cached)"]
        for aid, t in sorted(self.running.items(), key=lambda kv: kv[1])[:6]:
            detail = self.details.get(aid)
            lines.append(f"  {aid}  {now - t:.1f}s" + (f"  {detail}" if detail else ""))
        return Text("\n".join(lines))

    @contextmanager
    def show(self) -> Iterator[Progress]:
        if self.plain:
            yield self
            return
        with Live(self._render(), console=console, transient=True, refresh_per_second=8) as live:
            self.live = live
            try:
                yield self
            finally:
                self.live = None


def explain(ran: list[tuple[str, str]]) -> None:
    if not ran:
        console.print("explain: nothing ran; every action was cached")
    for description, reason in ran:
        console.print(f"explain: {escape(description)}: {escape(reason)}")


def summary(targets: int, run: int, cached: int, seconds: float, *, remote: int = 0, down: int = 0,
            up: int = 0) -> None:
    fetched = f", {remote} from the remote cache" if remote else ""
    moved = f" ({human(down)} downloaded, {human(up)} uploaded)" if down or up else ""
    console.print(f"built {targets} target{'s' if targets != 1 else ''}: {run} actions run, "
                  f"{cached} cached{fetched}{moved}, in {seconds:.2f}s")



def graph_tree(title: str, children: dict[str, list[str]], roots: list[str]) -> None:
    root = Tree(escape(title))

    def add(node: Tree, label: str, seen: tuple[str, ...]) -> None:
        branch = node.add(escape(label))
        if label in seen:
            return
        for child in children.get(label, []):
            add(branch, child, (*seen, label))

    for r in roots:
        add(root, r, ())
    console.print(root)


def is_tty() -> bool:
    return sys.stderr.isatty()
