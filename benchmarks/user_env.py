"""The environment a timed minibuild runs in: a user's shell, with bytecode caching on.

A user's minibuild has its modules compiled (pip compiles on install; Python writes the rest on first
use). A caller that sets PYTHONDONTWRITEBYTECODE (some CI shells do) would otherwise make every timed run
compile every minibuild module again, about a second of each start-up that no user pays. The bytecode goes
under its own prefix in the temporary directory, so the repository stays untouched.
"""

from __future__ import annotations

import os
import tempfile

PYCACHE = os.path.join(tempfile.gettempdir(), "minibuild-bench-pycache")


def user_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "NO_COLOR": "1", "PYTHONPYCACHEPREFIX": PYCACHE, **extra}


def compile_minibuild(python: str) -> None:
    """Compile minibuild's modules once, as installing it does, so no timed run pays for compiling them."""
    import subprocess
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    subprocess.run([python, "-m", "compileall", "-q", str(repo / "minibuild"), str(repo / "rules")],
                   env=user_env(), check=True)
