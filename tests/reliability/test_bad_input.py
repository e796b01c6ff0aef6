"""Bad input of every kind: one clear message, exit 2, no traceback, and the cache and outputs untouched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

GOOD = '[[image]]\nname = "ok"\nbinaries = ["/bin/bash"]\n\n'

# (what the BUILD.toml adds, a file the case needs (path, bytes or None), text the message must hold)
CASES = {
    "toml syntax": ('[[image]\nname = "x"\n', None, "TOML syntax error"),
    "unknown key": ('[[image]]\nname = "x"\nbinary = ["/bin/sh"]\n', None, "did you mean `binaries`"),
    "unknown rule": ('[[imag]]\nname = "x"\n', None, "did you mean `image`"),
    "wrong type": ('[[image]]\nname = "x"\nentrypoint = "/bin/sh"\n', None, "entrypoint"),
    "duplicate name": ('[[image]]\nname = "ok"\nbinaries = ["/bin/sh"]\n', None, "duplicate target name"),
    "bad label": ('[[image]]\nname = "x"\nbase = "//a b"\n', None, "malformed label"),
    "label names nothing": ('[[image]]\nname = "x"\nbase = ":okk"\n', None, "did you mean `//img:ok`"),
    "missing binary": ('[[image]]\nname = "x"\nbinaries = ["/usr/bin/no-such-program"]\n', None, "does not exist"),
    "directory as binary": ('[[image]]\nname = "x"\nbinaries = ["/usr/bin"]\n', None, "/usr/bin"),
    "not ELF nor script": ('[[image]]\nname = "x"\nbinaries = ["/etc/debian_version"]\n', None, "/etc/debian_version"),
    "dest escapes root": ('[[image]]\nname = "x"\nbinaries = ["/bin/sh"]\n'
                          'files = [{ src = "f", dest = "/../../etc/x" }]\n', ("f", b"x"), "escapes the image root"),
    "relative dest": ('[[image]]\nname = "x"\nbinaries = ["/bin/sh"]\nfiles = [{ src = "f", dest = "etc/x" }]\n',
                      ("f", b"x"), "absolute path"),
    "source outside workspace": ('[[image]]\nname = "x"\nbinaries = ["/bin/sh"]\n'
                                 'files = [{ src = "../../etc/passwd", dest = "/x" }]\n', None,
                                 "outside the workspace"),
    "missing source": ('[[image]]\nname = "x"\nbinaries = ["/bin/sh"]\nfiles = [{ src = "nope", dest = "/x" }]\n',
                       None, "does not exist"),
    "symlink out of workspace": ('[[image]]\nname = "x"\nbinaries = ["/bin/sh"]\n'
                                 'files = [{ src = "link", dest = "/x" }]\n', ("link", "/etc/passwd"),
                                 "outside the workspace"),
    "two sources one dest": ('[[image]]\nname = "x"\nbinaries = ["/bin/sh"]\nfiles = [{ src = "f", dest = "/x" },'
                             ' { src = "g", dest = "/x" }]\n', ("f", b"1"), "two different contents"),
    "bad mode": ('[[image]]\nname = "x"\nbinaries = ["/bin/sh"]\nfiles = [{ src = "f", dest = "/x", mode = "999" }]\n',
                 ("f", b"x"), "mode"),
    "bad platform": ('[[image]]\nname = "x"\nbinaries = ["/bin/sh"]\nplatforms = ["windows"]\n', None, "platform"),
    "bad tag": ('[[image]]\nname = "x"\nbinaries = ["/bin/sh"]\ntag = "UPPER/Case:!"\n', None, "image reference"),
    "bad size": ('[[image]]\nname = "x"\nbinaries = ["/bin/sh"]\nmax_size = "lots"\n', None, "max_size"),
    "cycle": ('[[image]]\nname = "x"\nbase = ":y"\n\n[[image]]\nname = "y"\nbase = ":x"\n', None,
              "dependency cycle: //img:x -> //img:y -> //img:x"),
    "genrule bad outs": ('[[genrule]]\nname = "x"\nouts = ["a/b"]\ncmd = "true"\n', None, "plain file name"),
}


def _snapshot(state: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(state)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in state.rglob("*") if p.is_file() and "stat-cache" not in p.name and "/tmp/" not in str(p)}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input(case, workspace, tally):
    text, extra, needle = CASES[case]
    workspace.write("img/BUILD.toml", GOOD)
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    good = subprocess.run([sys.executable, "-m", "minibuild", "build", "//img:ok", "--json", "--no-load"],
                          cwd=workspace.root, capture_output=True, text=True, env=env)
    assert good.returncode == 0, good.stderr
    before = _snapshot(workspace.root / ".minibuild")
    workspace.write("img/BUILD.toml", GOOD + text)
    if extra:
        path = workspace.root / "img" / extra[0]
        if isinstance(extra[1], bytes):
            path.write_bytes(extra[1])
            (workspace.root / "img/g").write_bytes(b"2")
        else:
            path.symlink_to(extra[1])
    label = "//img:x" if "name = \"x\"" in text else "//img:ok"
    tally["cases"] += 1
    bad = subprocess.run([sys.executable, "-m", "minibuild", "build", label, "--no-load"], cwd=workspace.root,
                         capture_output=True, text=True, env=env)
    if "Traceback" in bad.stderr or bad.returncode == 3:
        tally["crashes"] += 1
    assert bad.returncode == 2, bad.stderr
    assert "Traceback" not in bad.stderr
    assert needle in bad.stderr, bad.stderr
    tally["clean_errors"] += 1
    # The failed build damaged nothing that was there: same files, same bytes.
    after = _snapshot(workspace.root / ".minibuild")
    lost = [k for k, v in before.items() if after.get(k) != v and not k.startswith(("cache/analysis", "history"))]
    if lost:
        tally["data_lost"] += 1
    assert not lost, lost
    workspace.write("img/BUILD.toml", GOOD)
    again = subprocess.run([sys.executable, "-m", "minibuild", "build", "//img:ok", "--json", "--no-load"],
                           cwd=workspace.root, capture_output=True, text=True, env=env)
    assert json.loads(again.stdout)["targets"][0]["digest"] == json.loads(good.stdout)["targets"][0]["digest"]


KEY = b"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC\n-----END PRIVATE KEY-----\n"


@pytest.mark.parametrize(("dest", "content"), [("/etc/ssl/private/server.pem", KEY), ("/root/.ssh/id_ed25519", b"x"),
                                               ("/etc/shadow", b"root:*:19000::::::\n"),
                                               ("/root/.docker/config.json", b"{}")])
def test_secrets_refused_unless_allowed(dest, content, workspace, cli, tally):
    workspace.write("img/s", "")
    (workspace.root / "img/s").write_bytes(content)
    workspace.write("img/BUILD.toml", f'[[image]]\nname = "x"\nbinaries = ["/bin/sh"]\n'
                                      f'files = [{{ src = "s", dest = "{dest}" }}]\n')
    tally["cases"] += 1
    r = cli("build", "//img:x", "--no-load", cwd=workspace.root)
    assert r.returncode == 2 and "looks like a secret" in r.stderr and dest in r.stderr, r.stderr
    assert "allow_secrets" in r.stderr
    tally["clean_errors"] += 1
    workspace.write("img/BUILD.toml", f'[[image]]\nname = "x"\nbinaries = ["/bin/sh"]\nallow_secrets = ["{dest}"]\n'
                                      f'files = [{{ src = "s", dest = "{dest}" }}]\n')
    assert cli("build", "//img:x", "--no-load", cwd=workspace.root).returncode == 0


def test_setuid_dropped_unless_kept(workspace, cli):
    import tarfile

    workspace.write("img/BUILD.toml", '[[image]]\nname = "su"\nbinaries = ["/usr/bin/su"]\n')
    r = cli("build", "//img:su", "--json", "--no-load", cwd=workspace.root)
    assert r.returncode == 0, r.stderr
    assert os.stat("/usr/bin/su").st_mode & 0o4000  # the source is setuid

    def mode_in_image(result) -> int:
        target = result.json()["targets"][0]
        for layer in target["layers"]:
            blob = workspace.root / target["oci"] / "blobs/sha256" / layer["digest"].split(":")[1]
            with tarfile.open(blob) as tar:
                for m in tar.getmembers():
                    if m.name == "usr/bin/su":
                        return m.mode
        raise AssertionError("no /usr/bin/su in the image")

    assert mode_in_image(r) & 0o6000 == 0
    workspace.write("img/BUILD.toml", '[[image]]\nname = "su"\nbinaries = ["/usr/bin/su"]\nkeep_setuid = true\n')
    kept = cli("build", "//img:su", "--json", "--no-load", cwd=workspace.root)
    assert mode_in_image(kept) & 0o4000


def test_pipe_as_source_is_refused_not_read(workspace, cli, tally):
    os.mkfifo(workspace.root / "img-pipe")
    workspace.write("img/BUILD.toml", '[[image]]\nname = "x"\nbinaries = ["/bin/sh"]\n'
                                      'files = [{ src = "../img-pipe", dest = "/p" }]\n')
    tally["cases"] += 1
    r = cli("build", "//img:x", "--no-load", cwd=workspace.root, timeout=60)
    assert r.returncode == 2 and "a device, socket or pipe" in r.stderr, r.stderr
    tally["clean_errors"] += 1
