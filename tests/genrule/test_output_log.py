"""A genrule's output is streamed to a log file in the cache, not held in memory; a failure shows its last lines,
each cut short, and where the log is. Measured: 16 MB on one line, then `exit 1`."""

from __future__ import annotations

import resource
import subprocess
import sys
import time

from tests.genrule.helpers import scratch_left

SIXTEEN_MB = 16_000_000
# `tr` streams: the command itself holds a few KiB whatever it prints, so the memory measured is minibuild's.
LONG_LINE = f"head -c {SIXTEEN_MB} /dev/zero | tr '\\\\0' x; echo; echo the-last-words; exit 1"


def _peak_rss_kib(argv: list[str], cwd) -> tuple[subprocess.CompletedProcess[str], int, float]:
    """Run `argv` under a fresh Python whose only child it is: its result, the peak resident size of it or any
    process below it (KiB, as getrusage counts the children waited for), and the seconds it took."""
    probe = ("import resource, subprocess, sys, time; t = time.monotonic(); "
             "p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
             "sys.stderr.write(p.stderr); print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "
             "time.monotonic() - t)")
    done = subprocess.run([sys.executable, "-c", probe, *argv], cwd=cwd, capture_output=True, text=True, timeout=300)
    code, rss, seconds = done.stdout.split()
    return subprocess.CompletedProcess(argv, int(code), "", done.stderr), int(rss), float(seconds)


def test_one_long_line_of_output_does_not_stall_a_failure(workspace):
    workspace.write("pkg/BUILD.toml", f'[[genrule]]\nname = "loud"\nouts = ["o"]\ncmd = "{LONG_LINE}"\n')
    r, rss_kib, seconds = _peak_rss_kib([sys.executable, "-m", "minibuild", "build", "//pkg:loud", "--no-load"],
                                        workspace.root)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert "genrule `//pkg:loud` failed with exit code 1" in r.stderr
    assert "the-last-words" in r.stderr and "[... cut]" in r.stderr
    assert len(r.stderr) < 20_000, len(r.stderr)  # the last lines, each cut: not 16 MB
    log = workspace.root / ".minibuild/cache/logs/pkg/loud.log"
    assert f"its whole output is in {log}" in r.stderr.replace("\n", "")
    assert log.stat().st_size == SIXTEEN_MB + len("\nthe-last-words\n")
    assert "caused by: [... cut]" in r.stderr  # the end of the long line, cut
    # Was 35 to 65 s and 197 MB: the error held the whole line and laid it out for the terminal.
    assert seconds < 15, seconds
    assert rss_kib < 120_000, rss_kib
    assert scratch_left(workspace.root) == []


def test_a_run_that_succeeds_keeps_its_log_too(workspace, cli):
    workspace.write("pkg/BUILD.toml", '[[genrule]]\nname = "g"\nouts = ["o"]\n'
                                      'cmd = "echo to-stdout; echo to-stderr >&2; echo x > $(OUT)"\n')
    r = cli("build", "//pkg:g", "--no-load", cwd=workspace.root)
    assert r.returncode == 0, r.stderr
    log = workspace.root / ".minibuild/cache/logs/pkg/g.log"
    assert log.read_text() == "to-stdout\nto-stderr\n"


def test_tail_reads_only_the_end_of_a_log(tmp_path):
    from minibuild.sandbox import tail

    log = tmp_path / "log"
    log.write_bytes(b"first\n" + b"y" * 50_000_000 + b"\n" + b"".join(b"line %d\n" % i for i in range(30)))
    started = time.monotonic()
    last = tail(str(log))
    assert time.monotonic() - started < 0.1
    assert last == [f"line {i}" for i in range(10, 30)]  # the 50 MB line is not among them
    log.write_bytes(b"z" * 1_000_000)
    [only] = tail(str(log))
    assert only == "[... cut] " + "z" * 400  # only its end was read
    log.write_bytes(b"short\n" + b"w" * 1000 + b"\n")
    assert tail(str(log)) == ["short", "w" * 400 + " [... cut]"]
    log.write_bytes(b"")
    assert tail(str(log)) == []
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss < 500_000
