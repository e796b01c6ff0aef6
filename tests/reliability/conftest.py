"""Reliability tests count what they tried; the summary table is printed at the end of the run."""

from __future__ import annotations

from collections import Counter

import pytest

TALLY: Counter[str] = Counter()


@pytest.fixture
def tally() -> Counter[str]:
    return TALLY


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: ARG001 - pytest's hook signature
    if not TALLY:
        return
    rows = [("cases tried", TALLY["cases"]), ("clean errors", TALLY["clean_errors"]),
            ("crashes (must be 0)", TALLY["crashes"]), ("data lost (must be 0)", TALLY["data_lost"]),
            ("kill trials", TALLY["kill_trials"]), ("kill trials survived", TALLY["kill_survived"]),
            ("sandbox escapes tried", TALLY["escapes_tried"]), ("escapes out (must be 0)", TALLY["escaped"]),
            ("secrets tried", TALLY["secrets_tried"]), ("secrets out (must be 0)", TALLY["secrets_shipped"]),
            ("cache entries tampered", TALLY["tampered"]), ("tampered used (must be 0)", TALLY["tampered_used"]),
            ("links refused", TALLY["links_refused"]), ("links used (must be 0)", TALLY["links_followed"])]
    terminalreporter.section("minibuild reliability")
    for name, value in rows:
        terminalreporter.write_line(f"{name:<26}{value:>8}")
