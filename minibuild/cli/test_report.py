"""The results of `minibuild test` and their three forms: a table on stderr, JSON, JUnit XML.

The table is drawn on the console of `minibuild.cli.ui`.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

from rich.table import Table
from rich.text import Text

from minibuild.cli.ui import console

# Characters XML 1.0 cannot carry at all (a container's output may hold any byte).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True)
class CheckResult:
    """One check of an image_test: `check` is where it was declared (`commands[0]`, `files[1]`,
    `metadata.env`), `what` says what it looked at, `message` why it failed (or what it saw)."""

    check: str
    what: str
    passed: bool
    message: str
    seconds: float

    @property
    def name(self) -> str:
        return f"{self.check} {self.what}" if self.what else self.check


@dataclass(frozen=True)
class TestResult:
    """Every check of one image_test target, run in the image `tag` (engine image id `image_id`)."""

    label: str
    image: str
    tag: str
    image_id: str
    checks: tuple[CheckResult, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def seconds(self) -> float:
        return sum(c.seconds for c in self.checks)


def counts(results: list[TestResult]) -> tuple[int, int]:
    """(checks passed, checks failed) over all results."""
    passed = sum(1 for r in results for c in r.checks if c.passed)
    return passed, sum(len(r.checks) for r in results) - passed


def render(results: list[TestResult], seconds: float) -> None:
    """A table of every check on stderr, then one summary line; failures say why."""
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("target")
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail")
    for r in results:
        for c in r.checks:
            result = Text("PASS", style="green") if c.passed else Text("FAIL", style="bold red")
            # Text, not markup: a container's output may hold `[...]` or `:x:` (an emoji code in markup).
            table.add_row(Text(r.label), Text(c.name), result, Text(c.message))
    console.print(table)
    passed, failed = counts(results)
    targets_failed = sum(1 for r in results if not r.passed)
    line = (f"{len(results)} image_test target{'s' if len(results) != 1 else ''}: {passed} checks passed, "
            f"{failed} failed ({targets_failed} target{'s' if targets_failed != 1 else ''} failed) "
            f"in {seconds:.2f}s")
    console.print(Text(("FAILED: " if failed else "ok: ") + line, style="bold red" if failed else "green"))


def as_json(results: list[TestResult]) -> dict[str, Any]:
    passed, failed = counts(results)
    return {
        "tests": [
            {
                "label": r.label,
                "image": r.image,
                "tag": r.tag,
                "image_id": r.image_id,
                "passed": r.passed,
                "checks": [{"check": c.check, "what": c.what, "passed": c.passed, "message": c.message,
                            "seconds": round(c.seconds, 3)} for c in r.checks],
            }
            for r in results
        ],
        "passed": passed,
        "failed": failed,
    }


def junit_xml(results: list[TestResult]) -> bytes:
    """JUnit XML: one <testsuite> per image_test target, one <testcase> per check, <failure> with the reason."""
    passed, failed = counts(results)
    root = ET.Element("testsuites", name="minibuild test", tests=str(passed + failed), failures=str(failed),
                      errors="0", time=f"{sum(r.seconds for r in results):.3f}")
    for r in results:
        suite = ET.SubElement(root, "testsuite", name=r.label, tests=str(len(r.checks)),
                              failures=str(sum(1 for c in r.checks if not c.passed)), errors="0", skipped="0",
                              time=f"{r.seconds:.3f}")
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="image", value=r.image)
        ET.SubElement(props, "property", name="tag", value=r.tag)
        for c in r.checks:
            case = ET.SubElement(suite, "testcase", classname=r.label, name=c.name, time=f"{c.seconds:.3f}")
            if not c.passed:
                message = _NOT_XML.sub("\ufffd", c.message)
                failure = ET.SubElement(case, "failure", message=message, type="CheckFailed")
                failure.text = message
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"
