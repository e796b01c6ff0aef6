"""Where namespaces cannot be made (unprivileged user namespaces switched off, a container without
CAP_SYS_ADMIN), a sandboxed command is one clear error that says what unshare said and how to get on. A unit
test: an `unshare` on PATH that fails as the real one does there stands in for such a machine."""

from __future__ import annotations

import os
import tempfile

import pytest

from minibuild import sandbox
from minibuild.errors import BuildError


def test_no_namespaces_is_a_clear_error_with_the_way_out(tmp_path, monkeypatch):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "unshare").write_text("#!/bin/sh\necho 'unshare: unshare failed: Operation not permitted' >&2\nexit 1\n")
    (fake / "unshare").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    scratch = tempfile.mkdtemp(dir=tmp_path)
    sandbox.prepare(scratch, {})
    with pytest.raises(BuildError) as caught:
        sandbox.run_sandboxed(["/bin/true"], scratch=scratch, env={"PATH": "/usr/bin:/bin"}, network=False,
                              timeout=30, log=os.path.join(scratch, "log"), hide=[], what="genrule `//pkg:g`")
    e = caught.value
    assert e.message == "the sandbox of genrule `//pkg:g` could not be set up"
    assert e.causes == ("unshare: unshare failed: Operation not permitted",)
    assert e.hint is not None and "unprivileged user namespaces" in e.hint and "`sandbox = false`" in e.hint


@pytest.mark.parametrize("home, hidden", [("/", False), ("/usr/sbin", False), ("/var", False), ("/etc", False),
                                          ("/var/lib/ci", True), ("/home/dev", True)])
def test_the_home_shown_empty_is_never_a_system_directory(monkeypatch, home, hidden):
    """A service user's home may be `/` or `/usr/sbin`: hiding it would hide the tools."""
    monkeypatch.setenv("HOME", home)
    assert sandbox.private_home() == ([home] if hidden else [])
