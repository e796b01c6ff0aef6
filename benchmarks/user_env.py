"""The environment a timed minibuild runs in: a user's shell, with bytecode caching on, running this checkout.

A user's minibuild has its modules compiled (pip compiles on install; Python writes the rest on first
use). A caller that sets PYTHONDONTWRITEBYTECODE (some CI shells do) would otherwise make every timed run
compile every minibuild module again, about a second of each start-up that no user pays. The bytecode goes
under its own prefix in the temporary directory, so the repository stays untouched.

The minibuild measured is the one of the checkout the script lives in, not whichever one the venv's editable
install points at: `minibuild` and `minibuild_rules` (the `rules/` folder, through a link in a folder of the
temporary directory) come first on PYTHONPATH. A clean clone of a commit is measured as that commit, whatever
edits another working tree holds.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

PYCACHE = os.path.join(tempfile.gettempdir(), "minibuild-bench-pycache")
REPO = Path(__file__).resolve().parent.parent


def import_path() -> str:
    """PYTHONPATH that imports this checkout's `minibuild` and `minibuild_rules`."""
    shim = Path(tempfile.gettempdir()) / f"minibuild-bench-path-{hashlib.sha256(bytes(REPO)).hexdigest()[:12]}"
    link = shim / "minibuild_rules"
    if not (link.is_symlink() and os.readlink(link) == str(REPO / "rules")):
        shim.mkdir(exist_ok=True)
        tmp = shim / f".link-{os.getpid()}"
        tmp.symlink_to(REPO / "rules")
        os.replace(tmp, link)
    return os.pathsep.join([str(REPO), str(shim), *filter(None, [os.environ.get("PYTHONPATH")])])


def user_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "NO_COLOR": "1", "PYTHONPYCACHEPREFIX": PYCACHE, "PYTHONPATH": import_path(), **extra}


def compile_minibuild(python: str) -> None:
    """Compile minibuild's modules once, as installing it does, so no timed run pays for compiling them."""
    subprocess.run([python, "-m", "compileall", "-q", str(REPO / "minibuild"), str(REPO / "rules")],
                   env=user_env(), check=True)
