"""`minibuild report`: JSON data, and an HTML page rendered by headless Chromium (no network)."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from tests.conftest import run_cli


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("headless Chromium is needed (Debian package `chromium`, in scripts/test.sh's apt list)")
    return found


def _png_colours(path: Path) -> int:
    """How many distinct RGB colours the PNG holds (8-bit RGB/RGBA, non-interlaced, as Chromium writes)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour_type = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour_type in (2, 6)
            channels = 3 if colour_type == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    colours: set[bytes] = set()
    prev = bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if f == 1:
                line[i] = (line[i] + a) & 0xFF
            elif f == 2:
                line[i] = (line[i] + b) & 0xFF
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        if y % 8 == 0:
            colours.update(bytes(line[x:x + 3]) for x in range(0, stride, channels * 4))
        prev = line
    return len(colours)


def test_report_json(catalog):
    root, built = catalog
    r = run_cli("report", "//shells/...", "--json", cwd=root)
    assert r.returncode == 0, r.stderr
    data = r.json()
    assert [i["label"] for i in data["images"]] == ["//shells:bash", "//shells:dash"]
    bash = data["images"][0]
    assert bash["tree"]["size"] == bash["size"]  # the treemap's bytes are the image's file bytes
    assert sum(layer["bytes"] for layer in bash["layers"]) == bash["size"]
    assert data["total"]["images"] == 2


def test_report_html_renders_in_headless_chromium(catalog, tmp_path):
    root, built = catalog
    page = tmp_path / "catalog.html"
    r = run_cli("report", "//...", "--html", str(page), cwd=root)
    assert r.returncode == 0, r.stderr
    text = page.read_text()
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in text
    assert "<link" not in text and "src=" not in text  # nothing fetched: CSS, JS and SVG are inline
    chromium = _chromium()
    flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,2000"]
    dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr
    for t in built["targets"]:
        assert t["label"] in dom.stdout, t["label"]
    assert dom.stdout.count("<svg") == len(built["targets"])
    assert dom.stdout.count('<rect class="file"') >= sum(t["files"] for t in built["targets"]) // 2
    shot = tmp_path / "shot.png"
    proc = subprocess.run([*flags, f"--screenshot={shot}", page.as_uri()], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and shot.is_file(), proc.stderr
    assert shot.stat().st_size > 20_000
    assert _png_colours(shot) > 10, "the screenshot is blank"


def test_report_needs_an_output(catalog):
    root, _ = catalog
    r = run_cli("report", "//...", cwd=root)
    assert r.returncode == 2 and "--html FILE" in r.stderr


def test_squarified_layout_fills_the_rectangle():
    from minibuild.reports.treemap import layout, squarify, tree

    rects = squarify([6, 6, 4, 3, 2, 2, 1], 0, 0, 6, 4)
    assert abs(sum(w * h for _, _, w, h in rects) - 24) < 1e-9
    assert all(w > 0 and h > 0 and x + w <= 6 + 1e-9 and y + h <= 4 + 1e-9 for x, y, w, h in rects)
    root = tree([{"path": "/usr/bin/a", "size": 10}, {"path": "/usr/lib/x/b.so", "size": 30},
                 {"path": "/etc/c", "size": 5}])
    assert root.size == 45 and [c.name for c in root.children] == ["usr", "etc"]
    placed = layout(root, 300, 200)
    leaves = [r for r in placed if r.leaf]
    assert {r.node.path for r in leaves} == {"/usr/bin/a", "/usr/lib/x/b.so", "/etc/c"}
    big = next(r for r in leaves if r.node.path == "/usr/lib/x/b.so")
    small = next(r for r in leaves if r.node.path == "/usr/bin/a")
    assert big.w * big.h > 2.5 * small.w * small.h
    json.dumps(root.to_json())
