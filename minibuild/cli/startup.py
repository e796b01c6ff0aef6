"""The garbage collector held off while minibuild starts up.

Start-up (the imports, the parsers, on a cold cache the rule machinery and the analysis) makes tens of thousands
of objects that live as long as the process and are never garbage, and the collector kept scanning them: 50-90 ms
of CPU of a cold build of one image (paired runs; benchmarks/README.md, bash_image.py). So a program run holds the
collector until the build starts its first action, then freezes what start-up made (never scanned again) and lets
the collector work as usual for the rest. A command that builds nothing holds it to the end; it lives briefly and what
it makes is freed by reference counting.
"""

from __future__ import annotations

import gc

_held = False


def hold_collector() -> None:
    global _held
    if gc.isenabled():
        gc.disable()
        _held = True


def release_collector() -> None:
    """Once start-up is over (cheap to call again)."""
    global _held
    if _held:
        _held = False
        gc.freeze()
        gc.enable()
