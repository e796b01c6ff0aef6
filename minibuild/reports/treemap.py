"""Squarified treemaps (Bruls, Huizing, van Wijk 2000) of an image's bytes by directory and file.

Pure geometry: `tree()` turns file paths and sizes into nested nodes, `layout()` places them in a
rectangle; html.py draws the result as SVG rects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Node:
    name: str  # one path component, or several joined when a directory has a single child
    path: str
    size: int = 0
    children: list[Node] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)  # for files: layer index, reason

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "path": self.path, "size": self.size}
        if self.children:
            out["children"] = [c.to_json() for c in self.children]
        return out


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    w: float
    h: float
    node: Node
    depth: int
    leaf: bool


def tree(files: list[dict[str, Any]]) -> Node:
    """A directory tree of the regular files with bytes (each dict: path, size, and anything for `info`)."""
    root = Node("/", "/")
    dirs: dict[str, Node] = {"/": root}
    for f in sorted(files, key=lambda f: f["path"]):
        if f["size"] <= 0:
            continue
        parts = [p for p in f["path"].split("/") if p]
        parent = root
        for i, part in enumerate(parts[:-1]):
            path = "/" + "/".join(parts[:i + 1])
            if path not in dirs:
                dirs[path] = Node(part, path)
                parent.children.append(dirs[path])
            parent = dirs[path]
        parent.children.append(Node(parts[-1], f["path"], f["size"], info=f))
    _sum(root)
    _collapse(root)
    return root


def _sum(node: Node) -> int:
    if node.children:
        node.size = sum(_sum(c) for c in node.children)
        node.children.sort(key=lambda c: (-c.size, c.name))
    return node.size


def _collapse(node: Node) -> None:
    """`usr` > `lib` > `x86_64-linux-gnu` with nothing else becomes one node `usr/lib/x86_64-linux-gnu`."""
    for i, child in enumerate(node.children):
        while len(child.children) == 1 and child.children[0].children:
            only = child.children[0]
            child = Node(f"{child.name}/{only.name}", only.path, only.size, only.children)
        node.children[i] = child
        _collapse(child)


def _worst(row: list[float], short: float) -> float:
    s = sum(row)
    return max(max(row) * short * short / (s * s), s * s / (short * short * min(row)))


def squarify(sizes: list[float], x: float, y: float, w: float, h: float) -> list[tuple[float, float, float, float]]:
    """Rectangles for `sizes` (sorted largest first) filling x, y, w, h, each with an aspect ratio near 1."""
    total = sum(sizes)
    if total <= 0 or w <= 0 or h <= 0:
        return [(x, y, 0.0, 0.0) for _ in sizes]
    areas = [s * w * h / total for s in sizes]
    rects: list[tuple[float, float, float, float]] = []
    i = 0
    while i < len(areas):
        short = min(w, h)
        row = [areas[i]]
        i += 1
        while i < len(areas) and _worst(row + [areas[i]], short) <= _worst(row, short):
            row.append(areas[i])
            i += 1
        s = sum(row)
        if w >= h:  # the row is a column on the left
            cw = s / h if h else 0.0
            yy = y
            for a in row:
                rh = a / cw if cw else 0.0
                rects.append((x, yy, cw, rh))
                yy += rh
            x, w = x + cw, w - cw
        else:  # the row is a band along the top
            rh = s / w if w else 0.0
            xx = x
            for a in row:
                rw = a / rh if rh else 0.0
                rects.append((xx, y, rw, rh))
                xx += rw
            y, h = y + rh, h - rh
    return rects


def layout(root: Node, width: float, height: float, header: float = 15.0, pad: float = 2.0) -> list[Rect]:
    """Every node's rectangle, parents before children. A directory keeps a `header` strip for its name
    when it is tall enough, and its children sit `pad` inside it."""
    out: list[Rect] = []

    def place(node: Node, x: float, y: float, w: float, h: float, depth: int) -> None:
        out.append(Rect(x, y, w, h, node, depth, not node.children))
        if not node.children or w < 2 * pad + 1 or h < 2 * pad + 1:
            return
        top = header if h > 3 * header and w > 40 else 0.0
        cx, cy, cw, ch = x + pad, y + pad + top, w - 2 * pad, h - 2 * pad - top
        for child, (rx, ry, rw, rh) in zip(node.children, squarify([c.size for c in node.children], cx, cy, cw, ch),
                                           strict=True):
            place(child, rx, ry, rw, rh, depth + 1)

    place(root, 0.0, 0.0, width, height, 0)
    return out
