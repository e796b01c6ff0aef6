"""`minibuild report`: the catalog as data (`--json`) and as one self-contained HTML page.

The page needs no network: CSS, a few lines of JS (filter by label) and the SVG treemaps are inline.
Each image gets a squarified treemap of its bytes by directory and file, coloured by the layer holding
the file, then its layer breakdown; the catalog totals come first.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any

from minibuild.reports.catalog import ImageRecord
from minibuild.reports.size import sizes
from minibuild.reports.treemap import Node, layout, tree

WIDTH, HEIGHT = 960, 420
# One hue per layer position (bottom first): loader+libc, shared libraries, the image's own files, more.
LAYER_COLOURS = ("#4e79a7", "#59a14f", "#f28e2b", "#b07aa1", "#edc948", "#76b7b2", "#e15759", "#9c755f")


def _layer_of(layers_json: dict[str, Any]) -> dict[str, int]:
    """path -> index of the layer that provides it (the topmost layer holding it wins)."""
    owner: dict[str, int] = {}
    for i, layer in enumerate(layers_json["layers"]):
        for f in layer["files"]:
            owner[f["path"]] = i
    return owner


def image_data(record: ImageRecord) -> dict[str, Any]:
    """What the report says of one image: sizes, layers (with their file counts and bytes), the file tree."""
    s = record.summary
    layers_json = record.layers_json()
    owner = _layer_of(layers_json)
    files = [{"path": f["path"], "size": f["size"], "layer": owner.get(f["path"], 0), "reason": f.get("reason", "")}
             for f in s["files"] if f["kind"] == "file"]
    layers = []
    for i, layer in enumerate(layers_json["layers"]):
        mine = [f for f in files if f["layer"] == i]
        layers.append({"digest": layer["digest"], "size": layer["size"], "created_by": layer.get("created_by", ""),
                       "files": len(mine), "bytes": sum(f["size"] for f in mine)})
    return {
        "label": record.label, "tag": s.get("tag"), "digest": s["digest"], "size": s["size"],
        "compressed_size": s["compressed_size"], "files": len(files), "layers": layers,
        "tree": tree(files).to_json(),
    }


def report(records: Sequence[ImageRecord]) -> dict[str, Any]:
    """`minibuild report --json`: every image's data and the catalog totals of `minibuild size`."""
    totals = sizes(records)
    images = [image_data(r) for r in records]
    shared = {i["label"]: i["shared_bytes"] for i in totals["images"]}
    for image in images:
        image["shared_bytes"] = shared[image["label"]]
    return {"images": images, "total": totals["total"]}


def _node(data: dict[str, Any]) -> Node:
    node = Node(data["name"], data["path"], data["size"], [_node(c) for c in data.get("children", [])])
    return node


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def treemap_svg(image: dict[str, Any], files_layer: dict[str, int]) -> str:
    root = _node(image["tree"])
    parts = [f'<svg class="treemap" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
             f'xmlns="http://www.w3.org/2000/svg" role="img" aria-label="bytes of {html.escape(image["label"])} '
             f'by directory and file">']
    for r in layout(root, WIDTH, HEIGHT):
        if r.w < 0.5 or r.h < 0.5:
            continue
        title = html.escape(f"{r.node.path}  {r.node.size:,} bytes ({_human(r.node.size)})")
        if r.leaf:
            colour = LAYER_COLOURS[files_layer.get(r.node.path, 0) % len(LAYER_COLOURS)]
            parts.append(f'<rect class="file" x="{r.x:.1f}" y="{r.y:.1f}" width="{r.w:.1f}" height="{r.h:.1f}" '
                         f'fill="{colour}"><title>{title}</title></rect>')
        else:
            shade = max(0, 235 - 18 * r.depth)
            parts.append(f'<rect class="dir" x="{r.x:.1f}" y="{r.y:.1f}" width="{r.w:.1f}" height="{r.h:.1f}" '
                         f'fill="rgb({shade},{shade},{shade + 8 if shade < 248 else shade})" stroke="#fff">'
                         f'<title>{title}</title></rect>')
        chars = int((r.w - 6) / 6.5)
        if chars >= 4 and r.h >= 13:
            text = r.node.name if r.leaf or r.node.name.endswith("/") else r.node.name + "/"
            text = text if len(text) <= chars else text[:chars - 1] + "…"
            weight = "" if r.leaf else ' font-weight="bold"'
            parts.append(f'<text x="{r.x + 3:.1f}" y="{r.y + 11:.1f}"{weight}>{html.escape(text)}</text>')
    parts.append("</svg>")
    return "".join(parts)


_CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#222;background:#fafafa}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 4px} .muted{color:#666}
table{border-collapse:collapse;margin:8px 0} th,td{padding:3px 10px;text-align:right;border-bottom:1px solid #ddd}
th:first-child,td:first-child{text-align:left} code{font-size:12px}
section.image{background:#fff;border:1px solid #ddd;border-radius:6px;padding:12px 16px;margin:18px 0}
svg.treemap{display:block;max-width:100%;height:auto;font:11px sans-serif}
svg.treemap text{fill:#111;pointer-events:none} svg.treemap rect.file{stroke:#fff;stroke-width:.5}
svg.treemap rect:hover{opacity:.8} .swatch{display:inline-block;width:11px;height:11px;margin-right:4px}
input#filter{font:inherit;padding:4px 8px;width:320px}
"""

_JS = """
document.getElementById('filter').addEventListener('input', function (e) {
  var q = e.target.value.toLowerCase();
  document.querySelectorAll('section.image').forEach(function (s) {
    s.style.display = s.dataset.label.toLowerCase().indexOf(q) >= 0 ? '' : 'none';
  });
});
"""


def render(data: dict[str, Any], title: str, layer_of: dict[str, dict[str, int]]) -> str:
    """The page for `report()`'s data; `layer_of` maps each label to its file -> layer index."""
    t = data["total"]
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
           f"<h1>{html.escape(title)}</h1>",
           f'<p class="muted">{t["images"]} images, {t["uncompressed_bytes"]:,} bytes of files; '
           f'{t["sum_bytes"]:,} compressed bytes image by image, {t["unique_bytes"]:,} stored once '
           f'({t["layers"]} distinct layers, {_human(t["sum_bytes"] - t["unique_bytes"])} shared).</p>',
           '<h2>Catalog</h2><table id="catalog"><thead><tr><th>image</th><th>files</th><th>bytes</th>'
           "<th>compressed</th><th>layers</th><th>shared</th></tr></thead><tbody>"]
    for i in data["images"]:
        out.append(f'<tr><td><a href="#{html.escape(_anchor(i["label"]))}">{html.escape(i["label"])}</a></td>'
                   f'<td>{i["files"]}</td><td>{i["size"]:,}</td><td>{i["compressed_size"]:,}</td>'
                   f'<td>{len(i["layers"])}</td><td>{i["shared_bytes"]:,}</td></tr>')
    out.append(f'</tbody><tfoot><tr><th>total</th><th></th><th>{t["uncompressed_bytes"]:,}</th>'
               f'<th>{t["sum_bytes"]:,}</th><th>{t["layers"]}</th><th>unique {t["unique_bytes"]:,}</th></tr>'
               "</tfoot></table>")
    out.append('<p><input id="filter" type="search" placeholder="filter images by label"></p>')
    for i in data["images"]:
        out.append(f'<section class="image" id="{html.escape(_anchor(i["label"]))}" '
                   f'data-label="{html.escape(i["label"])}">')
        out.append(f'<h2>{html.escape(i["label"])} <span class="muted">{html.escape(i["tag"] or "")}</span></h2>')
        out.append(f'<p class="muted">{i["files"]} files, {i["size"]:,} bytes ({_human(i["size"])}), '
                   f'{i["compressed_size"]:,} compressed in {len(i["layers"])} layers; '
                   f'<code>{html.escape(i["digest"])}</code></p>')
        out.append(treemap_svg(i, layer_of.get(i["label"], {})))
        out.append("<table><thead><tr><th>layer</th><th>files</th><th>file bytes</th><th>compressed</th>"
                   "<th>digest</th></tr></thead><tbody>")
        for n, layer in enumerate(i["layers"]):
            colour = LAYER_COLOURS[n % len(LAYER_COLOURS)]
            out.append(f'<tr><td><span class="swatch" style="background:{colour}"></span>'
                       f'{html.escape(layer["created_by"])}</td><td>{layer["files"]}</td>'
                       f'<td>{layer["bytes"]:,}</td><td>{layer["size"]:,}</td>'
                       f'<td><code>{html.escape(layer["digest"][:19])}</code></td></tr>')
        out.append("</tbody></table></section>")
    out.append(f"<script>{_JS}</script></body></html>")
    return "\n".join(out)


def _anchor(label: str) -> str:
    return "img-" + "".join(c if c.isalnum() else "-" for c in label.strip("/"))


def write_html(records: Sequence[ImageRecord], path: str, title: str) -> dict[str, Any]:
    data = report(records)
    layer_of = {r.label: _layer_of(r.layers_json()) for r in records}
    with open(path, "w", encoding="utf-8") as f:
        f.write(render(data, title, layer_of))
    return data


def dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2)
