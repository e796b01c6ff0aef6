"""Rich tables of the reports (size, diff, sbom) on stderr, through the console of ui.py."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

from minibuild.cli.ui import console, human


def _n(value: int) -> str:
    return f"{value:,}"


def size_table(report: dict[str, Any]) -> None:
    table = Table(show_edge=False, pad_edge=False)
    for name, justify in (("image", "left"), ("files", "right"), ("bytes", "right"), ("compressed", "right"),
                          ("layers", "right"), ("shared", "right"), ("budget", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for i in report["images"]:
        b = i["budget"]
        status = b["status"] if b["status"] == "-" else (
            f"ok ({human(b['headroom'])} left)" if b["status"] == "ok" else f"OVER by {human(-b['headroom'])}")
        table.add_row(escape(i["label"]), _n(i["files"]), _n(i["bytes"]), _n(i["compressed_bytes"]),
                      str(i["layers"]), _n(i["shared_bytes"]), status)
    t = report["total"]
    table.add_section()
    table.add_row(f"{t['images']} images", "", _n(t["uncompressed_bytes"]), _n(t["sum_bytes"]), str(t["layers"]),
                  "", "")
    console.print(table)
    saved = t["sum_bytes"] - t["unique_bytes"]
    console.print(f"  {t['images']} images add up to {_n(t['sum_bytes'])} compressed bytes "
                  f"({human(t['sum_bytes'])}); stored once by layer digest: {_n(t['unique_bytes'])} bytes "
                  f"({human(t['unique_bytes'])}) in {t['layers']} distinct layers, {human(saved)} saved")


def diff_table(report: dict[str, Any]) -> None:
    console.print(f"{escape(report['a']['name'])}  ->  {escape(report['b']['name'])}")
    if not (report["added"] or report["removed"] or report["changed"]):
        console.print("  no file differs")
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("")
    table.add_column("path")
    table.add_column("before", justify="right")
    table.add_column("after", justify="right")
    table.add_column("delta", justify="right")
    for f in report["added"]:
        size = _n(f["size"]) if f["kind"] == "file" else f["kind"]
        table.add_row("+", escape(f["path"]), "", size, f"+{size}" if f["kind"] == "file" else "")
    for f in report["removed"]:
        size = _n(f["size"]) if f["kind"] == "file" else f["kind"]
        table.add_row("-", escape(f["path"]), size, "", f"-{size}" if f["kind"] == "file" else "")
    for f in report["changed"]:
        sign = ">" if f["delta"] > 0 else ("<" if f["delta"] < 0 else "~")
        table.add_row(sign, escape(f["path"] + (f" ({f['what']})" if f.get("what") else "")), _n(f["before"]),
                      _n(f["after"]), f"{f['delta']:+,}")
    if table.row_count:
        console.print(table)
    t = report["totals"]
    console.print(f"  {t['added']} added, {t['removed']} removed, {t['grown']} grown, {t['shrunk']} shrunk, "
                  f"{t['modified']} changed at the same size; {t['bytes_before']:,} -> {t['bytes_after']:,} bytes "
                  f"({t['delta_bytes']:+,})")


def sbom_summary(label: str, doc_format: str, packages: list[dict[str, Any]], files: int, unowned: int) -> None:
    table = Table(title=f"{label}: {doc_format}", title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("package")
    table.add_column("version")
    table.add_column("license")
    table.add_column("files", justify="right")
    for p in packages:
        table.add_row(escape(p["name"]), escape(p["version"]), escape(p["license"] or "-"), str(p["files"]))
    console.print(table)
    console.print(f"  {files} files, {unowned} owned by no dpkg package")
