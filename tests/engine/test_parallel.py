"""`-j N` runs independent actions at the same time; `-j 1` runs them one after the other.

Each genrule records, with `date`, when its own command started and ended; the intervals come from
the actions themselves, not from minibuild's report.
"""

from __future__ import annotations

import time

from tests.engine.helpers import out_dir

N = 4
SLEEP = 1.0


def _write_sleepers(workspace) -> None:
    rules = []
    for i in range(N):
        # The `echo` makes each command (and so each action key) different.
        rules.append(f'[[genrule]]\nname = "s{i}"\nouts = ["t.txt"]\n'
                     f'cmd = "date +%s.%N > $(OUT); echo {i} >/dev/null; sleep {SLEEP}; date +%s.%N >> $(OUT)"\n')
    workspace.write("pkg/BUILD.toml", "\n".join(rules))


def _intervals(root) -> list[tuple[float, float]]:
    spans = []
    for i in range(N):
        start, end = (out_dir(root, f"//pkg:s{i}") / "t.txt").read_text().split()
        spans.append((float(start), float(end)))
    return sorted(spans)


def _build(cli, workspace, jobs: int) -> float:
    started = time.monotonic()
    r = cli("build", "//pkg:all", "-j", str(jobs), "--json", "--no-load", cwd=workspace.root)
    wall = time.monotonic() - started
    assert r.returncode == 0, r.stderr
    assert r.json()["actions"]["run"] == N
    return wall


def test_jobs_4_overlaps_actions(workspace, cli):
    _write_sleepers(workspace)
    wall = _build(cli, workspace, 4)
    spans = _intervals(workspace.root)
    for start, end in spans:
        assert end - start >= SLEEP
    # All four were running at one moment: the latest start precedes the earliest end.
    assert max(s for s, _ in spans) < min(e for _, e in spans), spans
    assert wall < N * SLEEP, f"{wall:.2f}s is not less than the {N * SLEEP:.0f}s the actions slept in total"


def test_jobs_1_runs_one_at_a_time(workspace, cli):
    _write_sleepers(workspace)
    wall = _build(cli, workspace, 1)
    spans = _intervals(workspace.root)
    for (_, end), (next_start, _) in zip(spans, spans[1:], strict=False):
        assert end <= next_start, spans
    assert wall >= N * SLEEP
