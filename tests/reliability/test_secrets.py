"""Secrets stay out of images (docs/runtime.md, "Secrets"): private keys made by the real tools (ssh-keygen, openssl,
gpg) and well-known credential files stop the build wherever they enter the image (`files`, genrule outputs shipped
as files or binaries, a sysroot's `trees`, runtime files), with one message naming each file and why, exit 2, no
traceback, no layer stored; the `allow_secrets` line the hint gives lets exactly those through. What images really
ship (public keys, certificates, programs that name key formats, the example workspaces) does not trip the check.

What an image holds is read back from its OCI layout with `tarfile`, not from minibuild's own reports."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.conftest import REPO

ENV = b"DATABASE_URL=postgres://app:hunter2@db/app\nAPI_TOKEN=0123456789abcdef\n"


def _run(*args: str | os.PathLike[str], **kwargs) -> bytes:
    return subprocess.run([str(a) for a in args], capture_output=True, check=True, **kwargs).stdout


@pytest.fixture(scope="session")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Keys, public keys and a certificate, each made by the tool that makes them for real."""
    d = tmp_path_factory.mktemp("keys")
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", d / "ssh")
    _run("openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", d / "rsa.pem")
    home = d / "gnupg"
    home.mkdir(mode=0o700)
    (d / "params").write_text("%no-protection\nKey-Type: eddsa\nKey-Curve: ed25519\nName-Real: minibuild test\n"
                              "Name-Email: test@example.invalid\nExpire-Date: 0\n%commit\n")
    try:
        _run("gpg", "--homedir", home, "--batch", "--gen-key", d / "params")
        pgp = _run("gpg", "--homedir", home, "--batch", "--armor", "--export-secret-keys")
        pgp_public = _run("gpg", "--homedir", home, "--batch", "--armor", "--export")
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], capture_output=True)
    return {
        "ssh": (d / "ssh").read_bytes(), "ssh.pub": (d / "ssh.pub").read_bytes(),
        "rsa": (d / "rsa.pem").read_bytes(),
        "rsa.pub": _run("openssl", "pkey", "-in", d / "rsa.pem", "-pubout"),
        "cert": _run("openssl", "req", "-x509", "-key", d / "rsa.pem", "-subj", "/CN=minibuild test", "-days", "1"),
        "pgp": pgp, "pgp.pub": pgp_public, "env": ENV,
    }


def image_files(root: Path, package: str, name: str) -> dict[str, bytes]:
    """Path -> content of every regular file of a built image, from its OCI layout."""
    oci = root / ".minibuild/out" / package / name / "oci"
    blobs = oci / "blobs/sha256"
    index = json.loads((oci / "index.json").read_text())
    manifest = json.loads((blobs / index["manifests"][0]["digest"].split(":")[1]).read_bytes())
    files: dict[str, bytes] = {}
    for layer in manifest["layers"]:
        with tarfile.open(blobs / layer["digest"].split(":")[1]) as tar:
            for member in tar.getmembers():
                if member.isfile():
                    files["/" + member.name] = tar.extractfile(member).read()  # type: ignore[union-attr]
    return files


def layer_blobs(root: Path) -> list[Path]:
    """The gzip blobs of the store: layers (nothing else minibuild stores is gzip)."""
    cas = root / ".minibuild/cache/cas"
    return [p for p in cas.rglob("*") if p.is_file() and p.read_bytes()[:2] == b"\x1f\x8b"]


def refused(r, paths: list[str], whys: list[str], tally) -> None:
    """The build failed as it must: exit 2, no traceback, each path with its reasons, the exact allow line."""
    tally["secrets_tried"] += 1
    if r.returncode == 0:
        tally["secrets_shipped"] += 1
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    text = " ".join(r.stderr.split())  # the terminal wraps long lines
    for path in paths:
        assert f"`{path}` looks like a secret" in text, text
    for why in whys:
        assert why in text, (why, text)
    tally["clean_errors"] += 1


def allow_line(r) -> str:
    [line] = [line.strip() for line in r.stderr.splitlines() if line.strip().startswith("allow_secrets = [")]
    return line


def image(files: list[tuple[str, str]], extra: str = "", name: str = "x", binaries: list[str] | None = None) -> str:
    entries = ", ".join(f'{{ src = "{src}", dest = "{dest}" }}' for src, dest in files)
    return f'[[image]]\nname = "{name}"\nbinaries = {json.dumps(binaries or ["/bin/sh"])}\nfiles = [{entries}]\n{extra}'


ISSUE = {  # the cases of the issue: where the file goes, what it holds, what the message must say of it
    "OpenSSH key at /root/id_rsa": ("/root/id_rsa", "ssh",
                                     ["an OpenSSH private key block at offset 0", "well-known credential file name"]),
    "OpenSSH key at /app/deploy_key": ("/app/deploy_key", "ssh", ["an OpenSSH private key block at offset 0"]),
    "RSA key made by openssl genpkey at SERVER.PEM": ("/etc/ssl/private/SERVER.PEM", "rsa",
                                                       ["a PEM private key block (`PRIVATE KEY`) at offset 0"]),
    "PGP private key block made by gpg": ("/app/signing.asc", "pgp", ["a PGP private key block at offset 0"]),
    "/app/.env": ("/app/.env", "env", ["a well-known credential file name (environment file `.env`)"]),
}


@pytest.mark.parametrize("case", list(ISSUE))
def test_each_case_of_the_issue_stops_the_build_until_allowed(case, made, workspace, cli, tally):
    dest, content, whys = ISSUE[case]
    (workspace.root / "img").mkdir()
    (workspace.root / "img/s").write_bytes(made[content])
    workspace.write("img/BUILD.toml", image([("s", dest)]))
    r = cli("build", "//img:x", "--no-load", cwd=workspace.root)
    refused(r, [dest], whys, tally)
    assert layer_blobs(workspace.root) == []  # the failed action stored no layer
    assert not (workspace.root / ".minibuild/out/img/x").exists()
    line = allow_line(r)
    assert line == f'allow_secrets = ["{dest}"]'
    workspace.write("img/BUILD.toml", image([("s", dest)], line + "\n"))
    ok = cli("build", "//img:x", "--no-load", cwd=workspace.root)
    assert ok.returncode == 0, ok.stderr
    assert "warning" not in ok.stderr
    assert image_files(workspace.root, "img", "x")[dest] == made[content]


def test_every_secret_is_listed_and_the_hint_keeps_what_is_allowed(made, workspace, cli, tally):
    (workspace.root / "img").mkdir()
    for name in ("ssh", "rsa", "pgp", "env"):
        (workspace.root / "img" / name).write_bytes(made[name])
    files = [("ssh", "/root/id_rsa"), ("ssh", "/app/deploy_key"), ("rsa", "/etc/ssl/private/SERVER.PEM"),
             ("pgp", "/app/signing.asc"), ("env", "/app/.env")]
    workspace.write("img/BUILD.toml", image(files, 'allow_secrets = ["/app/deploy_key"]\n'))
    r = cli("build", "//img:x", "--no-load", cwd=workspace.root)
    refused(r, ["/root/id_rsa", "/etc/ssl/private/SERVER.PEM", "/app/signing.asc", "/app/.env"], [], tally)
    assert "`/app/deploy_key` looks like a secret" not in r.stderr
    assert "4 files that look like secrets" in r.stderr
    line = allow_line(r)
    assert line == ('allow_secrets = ["/app/deploy_key", "/app/.env", "/app/signing.asc", '
                    '"/etc/ssl/private/SERVER.PEM", "/root/id_rsa"]')
    workspace.write("img/BUILD.toml", image(files, line + "\n"))
    assert cli("build", "//img:x", "--no-load", cwd=workspace.root).returncode == 0


def test_globs_and_directories_allow_what_they_name_and_an_unused_one_is_a_warning(made, workspace, cli, tally):
    (workspace.root / "img").mkdir()
    (workspace.root / "img/k").write_bytes(made["ssh"])
    # /lib is a symlink to usr/lib in the image (merged /usr): the file is at /usr/lib/..., either name allows it
    files = [("k", "/app/keys/a"), ("k", "/app/keys/sub/b"), ("k", "/srv/c.key"), ("k", "/lib/x86_64-linux-gnu/k")]
    workspace.write("img/BUILD.toml", image(files, 'allow_secrets = ["/app/keys", "/lib/x86_64-linux-gnu/k"]\n'))
    refused(cli("build", "//img:x", "--no-load", cwd=workspace.root), ["/srv/c.key"], [], tally)
    workspace.write("img/BUILD.toml", image(files, 'allow_secrets = ["/app/keys", "/srv/*.key", "/old/key", '
                                                   '"/usr/lib/x86_64-linux-gnu/k"]\n'))
    r = cli("build", "//img:x", "--no-load", cwd=workspace.root)
    assert r.returncode == 0, r.stderr
    assert "`allow_secrets` names `/old/key`, but the image ships no secret there" in r.stderr
    assert "/app/keys`, but" not in r.stderr and "/srv/*.key`, but" not in r.stderr


@pytest.mark.parametrize(("value", "needle"), [("true", "`true` would let any secret through"),
                                               ('["app/key"]', "must be an absolute path"),
                                               ('["/a/../../key"]', "escapes the image root")])
def test_allow_secrets_names_image_paths(value, needle, workspace, cli):
    workspace.write("img/BUILD.toml", f'[[image]]\nname = "x"\nbinaries = ["/bin/sh"]\nallow_secrets = {value}\n')
    r = cli("build", "//img:x", "--no-load", cwd=workspace.root)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert needle in r.stderr and "img/BUILD.toml:4" in r.stderr and "allow_secrets" in r.stderr, r.stderr


# -- wherever the file comes from --------------------------------------------------------------------------------

def test_a_key_a_genrule_makes_shipped_as_a_file(workspace, cli, tally):
    workspace.write("img/BUILD.toml", '[[genrule]]\nname = "keygen"\nouts = ["key"]\n'
                                      'cmd = "ssh-keygen -q -t ed25519 -N \\"\\" -C \\"\\" -f k && mv k $(OUT)"\n\n'
                                      + image([(":keygen", "/app/deploy_key")]))
    r = cli("build", "//img:x", "--no-load", cwd=workspace.root)
    refused(r, ["/app/deploy_key"], ["an OpenSSH private key block at offset 0"], tally)
    workspace.write("img/BUILD.toml", (workspace.root / "img/BUILD.toml").read_text() + allow_line(r) + "\n")
    ok = cli("build", "//img:x", "--no-load", cwd=workspace.root)
    assert ok.returncode == 0, ok.stderr
    assert image_files(workspace.root, "img", "x")["/app/deploy_key"].startswith(b"-----BEGIN OPENSSH PRIVATE KEY")


def test_a_key_inside_a_genrule_script_shipped_as_a_binary(made, workspace, cli, tally):
    (workspace.root / "img").mkdir()
    (workspace.root / "img/key.pem").write_bytes(made["rsa"])
    script = "{ echo '#!/bin/sh'; echo 'cat <<EOF'; cat $(SRC); echo EOF; } >$(OUT)"
    workspace.write("img/BUILD.toml", '[[genrule]]\nname = "tool"\nsrcs = ["key.pem"]\nouts = ["tool"]\n'
                                      f'cmd = "{script}"\n\n[[image]]\nname = "x"\nbinaries = [":tool", "/bin/sh"]\n')
    r = cli("build", "//img:x", "--no-load", cwd=workspace.root)
    refused(r, ["/usr/local/bin/tool"], ["a PEM private key block (`PRIVATE KEY`) at offset 20"], tally)


@pytest.fixture
def sysroot(tmp_path: Path, made) -> Path:
    """A sysroot of files alone: an app directory with a key in it, and a CA bundle with a key appended."""
    root = tmp_path / "sysroot"
    (root / "srv/app").mkdir(parents=True)
    (root / "srv/app/deploy_key").write_bytes(made["ssh"])
    (root / "srv/app/README").write_text("the app\n")
    (root / "etc/ssl/certs").mkdir(parents=True)
    (root / "etc/ssl/certs/ca-certificates.crt").write_bytes(made["cert"] + made["rsa"])
    return root


def test_a_key_in_a_sysroot_tree(sysroot, workspace, cli, tally):
    workspace.write("img/BUILD.toml",
                    f'[[image]]\nname = "t"\nsysroot = "{sysroot}"\ntrees = [{{ src = "/srv/app" }}]\n')
    r = cli("build", "//img:t", "--no-load", cwd=workspace.root)
    refused(r, ["/srv/app/deploy_key"], ["an OpenSSH private key block at offset 0", "tree /srv/app"], tally)
    assert "README" not in r.stderr


def test_a_key_in_a_runtime_file(sysroot, made, workspace, cli, tally):
    (workspace.root / "img").mkdir()
    (workspace.root / "img/readme").write_text("hi\n")
    workspace.write("img/BUILD.toml", f'[[image]]\nname = "c"\nsysroot = "{sysroot}"\nca_certificates = true\n'
                                      'files = [{ src = "readme", dest = "/README" }]\n')
    r = cli("build", "//img:c", "--no-load", cwd=workspace.root)
    offset = len(made["cert"])  # where the key begins in the bundle
    refused(r, ["/etc/ssl/certs/ca-certificates.crt"],
            [f"a PEM private key block (`PRIVATE KEY`) at offset {offset}", "CA certificates"], tally)


def test_a_base_image_secret_is_not_asked_for_again(made, workspace, cli):
    """The derived image adds nothing secret; the base image's allowed key was checked when the base was built."""
    (workspace.root / "img").mkdir()
    (workspace.root / "img/k").write_bytes(made["ssh"])
    workspace.write("img/BUILD.toml", image([("k", "/app/deploy_key")], 'allow_secrets = ["/app/deploy_key"]\n',
                                            name="base")
                    + '\n[[image]]\nname = "x"\nbase = ":base"\nenv = { A = "1" }\n'
                      'files = [{ src = "k", dest = "/app/deploy_key" }]\n')
    r = cli("build", "//img:x", "--no-load", cwd=workspace.root)
    assert r.returncode == 0, r.stderr


# -- what images really ship -------------------------------------------------------------------------------------

def test_public_keys_certificates_and_programs_that_name_key_formats_ship(made, workspace, cli):
    (workspace.root / "img").mkdir()
    for name in ("ssh.pub", "rsa.pub", "cert", "pgp.pub", "env"):
        (workspace.root / "img" / name).write_bytes(made[name])
    (workspace.root / "img/doc").write_text("Put your key (-----BEGIN PRIVATE KEY-----) in /run/secrets/key.\n")
    files = [("ssh.pub", "/root/.ssh/id_ed25519.pub"), ("ssh.pub", "/root/.ssh/authorized_keys"),
             ("ssh.pub", "/root/.ssh/known_hosts"), ("rsa.pub", "/app/rsa.pub.pem"), ("cert", "/app/cert.pem"),
             ("pgp.pub", "/app/signing-public.asc"), ("env", "/app/.env.example"), ("env", "/app/prod.env"),
             ("doc", "/app/README")]
    # ssh-keygen holds the OpenSSH key markers, gpg the PGP ones, as C strings; libgnutls (curl's, through librtmp)
    # holds whole test keys of its self-tests.
    workspace.write("img/BUILD.toml", image(files, binaries=["/bin/sh", "/usr/bin/ssh-keygen", "/usr/bin/gpg",
                                                             "/usr/bin/curl"]))
    r = cli("build", "//img:x", "--no-load", cwd=workspace.root)
    assert r.returncode == 0, r.stderr
    shipped = image_files(workspace.root, "img", "x")
    gnutls = next(data for path, data in shipped.items() if re.search(r"/libgnutls\.so\.30", path))
    assert re.search(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----\n[A-Za-z0-9+/]{40}", gnutls)
    assert b"-----BEGIN OPENSSH PRIVATE KEY-----" in shipped["/usr/bin/ssh-keygen"]


@pytest.mark.parametrize("example", ["catalog", "runtime"])
def test_the_example_workspaces_build(example, tmp_path, cli):
    ws = tmp_path / example
    shutil.copytree(REPO / "examples" / example, ws, ignore=shutil.ignore_patterns(".minibuild"))
    r = cli("build", "//...", "--no-load", "--quiet", cwd=ws)
    assert r.returncode == 0, r.stderr
    assert "secret" not in r.stderr


# -- the scan itself: one pass over the bytes the layer writer reads -----------------------------------------------

@pytest.mark.parametrize("chunk", [1, 7, 64, 1000, 16384])
def test_a_block_is_found_wherever_the_chunks_cut_it(made, chunk):
    from minibuild.image.secrets import KeyScan

    for name in ("ssh", "rsa", "pgp"):
        for before in (0, 5, 1023, 1024, 16380, 40000):
            data = b"x" * before + made[name] + b"\n# trailer\n"
            scan = KeyScan()
            for start in range(0, len(data), chunk):
                scan.update(data[start:start + chunk])
            found = scan.finish()
            assert found is not None and found.endswith(f"at offset {data.index(b'-----BEGIN')}"), (name, before)
    for name in ("ssh.pub", "rsa.pub", "cert", "pgp.pub", "env"):
        scan = KeyScan()
        for start in range(0, len(made[name]), chunk):
            scan.update(made[name][start:start + chunk])
        assert scan.finish() is None, name


def test_the_layer_writer_shows_each_file_once_as_it_writes_it(made, tmp_path):
    from minibuild.entry import TreeEntry
    from minibuild.oci.layer import write_layer

    (tmp_path / "big").write_bytes(os.urandom(3 << 20) + made["ssh"])
    seen: dict[str, bytearray] = {}
    closed: list[str] = []

    class Watch:
        def __init__(self, entry: TreeEntry) -> None:
            self.path = entry.path
            seen[self.path] = bytearray()

        def update(self, data: bytes) -> None:
            seen[self.path] += data

        def close(self) -> None:
            closed.append(self.path)

    entries = [TreeEntry("/big", "file", source=str(tmp_path / "big")), TreeEntry("/small", "file", data=made["env"]),
               TreeEntry("/d", "dir")]
    write_layer(entries, str(tmp_path / "layer.tar"), compression="none", watch=Watch)
    assert sorted(closed) == ["/big", "/small"]
    assert bytes(seen["/big"]) == (tmp_path / "big").read_bytes() and bytes(seen["/small"]) == made["env"]
    with tarfile.open(tmp_path / "layer.tar") as tar:
        assert tar.extractfile("big").read() == (tmp_path / "big").read_bytes()  # type: ignore[union-attr]
