"""Accounts (`user`, `users`, `groups`) in the real Docker engine: the image's `id` must say what the host's `id`
says of the same account of the host sysroot (docs/runtime.md, "accounts")."""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from minibuild.elf.sysroot import Sysroot
from minibuild.errors import InputError
from minibuild.image.runtime.accounts import AccountsSpec, plan_accounts


def _host_id(name: str) -> str:
    return subprocess.run(["id", name], capture_output=True, text=True, check=True).stdout


def _docker_id(docker: str, image: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([docker, "run", "--rm", *args, image], capture_output=True, text=True, timeout=120)


ID_IMAGES = """
[[image]]
name = "nobody"
binaries = ["/usr/bin/id"]
user = "nobody"
users = ["www-data", "daemon"]
tag = "minibuild-test/accounts-nobody:latest"

[[image]]
name = "numbers"
binaries = ["/usr/bin/id"]
user = "4321:8765"
tag = "minibuild-test/accounts-numbers:latest"
"""


@pytest.mark.docker
def test_named_and_numeric_accounts_run_as_the_host_says(workspace, cli, docker_engine):
    workspace.write("app/BUILD.toml", ID_IMAGES)
    r = cli("build", "//app:nobody", "//app:numbers", cwd=workspace.root)
    assert r.returncode == 0, r.stderr
    # The image's own user: the host's account, copied with its group.
    out = _docker_id(docker_engine, "minibuild-test/accounts-nobody:latest")
    assert out.returncode == 0 and out.stdout == _host_id("nobody"), (out.stdout, out.stderr)
    # Accounts the program switches to: Docker finds them by name in the image.
    for name in ("www-data", "daemon"):
        out = _docker_id(docker_engine, "minibuild-test/accounts-nobody:latest", "--user", name)
        assert out.returncode == 0 and out.stdout == _host_id(name), (name, out.stdout, out.stderr)
    # The config says the numbers (a name cannot be checked by Kubernetes' runAsNonRoot).
    config = json.loads(subprocess.run([docker_engine, "image", "inspect", "minibuild-test/accounts-nobody:latest"],
                                       capture_output=True, text=True, check=True).stdout)[0]["Config"]
    assert config["User"] == "65534:65534"
    # UID:GID: generated entries, so that getpwuid() and getgrgid() find the process's own ids.
    out = _docker_id(docker_engine, "minibuild-test/accounts-numbers:latest")
    assert out.returncode == 0 and out.stdout == "uid=4321(user4321) gid=8765(group8765) groups=8765(group8765)\n", \
        (out.stdout, out.stderr)


def test_an_unknown_account_is_exit_2_naming_the_sysroot_file_and_close_names(workspace, cli):
    workspace.write("app/BUILD.toml", '[[image]]\nname = "i"\nbinaries = ["/usr/bin/id"]\nuser = "nobdy"\n')
    r = cli("build", "//app:i", "--no-load", cwd=workspace.root)
    assert r.returncode == 2, r.stderr
    assert "`user` names the account `nobdy`, which is not in `/etc/passwd` of sysroot `/`" in r.stderr, r.stderr
    assert "close names: `nobody`" in r.stderr and "Traceback" not in r.stderr
    workspace.write("app/BUILD.toml", '[[image]]\nname = "i"\nbinaries = ["/usr/bin/id"]\ngroups = ["wheel0"]\n')
    r = cli("build", "//app:i", "--no-load", cwd=workspace.root)
    assert r.returncode == 2 and "`groups` names the group `wheel0`, which is not in `/etc/group`" in r.stderr, r.stderr


def test_a_user_that_is_not_a_name_or_numbers_is_refused_in_the_build_file(workspace, cli):
    workspace.write("app/BUILD.toml", '[[image]]\nname = "i"\nbinaries = ["/usr/bin/id"]\nuser = "a b"\n')
    r = cli("build", "//app:i", "--no-load", cwd=workspace.root)
    assert r.returncode == 2 and "BUILD.toml" in r.stderr and "user `a b` must be" in r.stderr, r.stderr


@pytest.mark.docker
def test_an_etc_passwd_in_files_replaces_the_generated_one_with_a_warning(workspace, cli, docker_engine):
    workspace.write("app/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:4242:4242:app:/:/bin/false\n")
    workspace.write("app/BUILD.toml", """
[[image]]
name = "own"
binaries = ["/usr/bin/id"]
files = [{ src = "passwd", dest = "/etc/passwd" }]
user = "app"
tag = "minibuild-test/accounts-own:latest"
""")
    r = cli("build", "//app:own", cwd=workspace.root)
    assert r.returncode == 0, r.stderr
    assert "`/etc/passwd` of //app:own files[0] replaces the one minibuild generates" in r.stderr, r.stderr
    out = _docker_id(docker_engine, "minibuild-test/accounts-own:latest")
    # The shipped file names the user; the generated /etc/group has no group 4242.
    assert out.returncode == 0 and out.stdout == "uid=4242(app) gid=4242 groups=4242\n", (out.stdout, out.stderr)


def _image_file(tarball: Path, path: str) -> bytes:
    """A file of the image's top-most layer holding it, read from the docker tarball."""
    with tarfile.open(tarball) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
        for layer in reversed(manifest[0]["Layers"]):
            with tarfile.open(fileobj=outer.extractfile(layer)) as inner:
                try:
                    return inner.extractfile(path.lstrip("/")).read()  # type: ignore[union-attr]
                except KeyError:
                    continue
    raise KeyError(path)


def test_a_package_sysroot_reads_base_passwd_masters(tmp_path):
    """An unpacked package sysroot has no /etc/passwd: base-passwd's masters are read (the host's, as Debian has
    them), and without base-passwd the error says to add it."""
    root = tmp_path / "sysroot"
    (root / "usr/share/base-passwd").mkdir(parents=True)
    for name in ("passwd.master", "group.master"):
        (root / "usr/share/base-passwd" / name).write_bytes(Path("/usr/share/base-passwd", name).read_bytes())
    accounts = plan_accounts(Sysroot(str(root)), AccountsSpec(user="www-data", package_sysroot=True), "bookworm")
    master = Path("/usr/share/base-passwd/passwd.master").read_text().splitlines()
    assert accounts.passwd.splitlines()[1] == next(line for line in master if line.startswith("www-data:"))
    groups = Path("/usr/share/base-passwd/group.master").read_text().splitlines()
    www = next(line for line in groups if line.startswith("www-data:"))
    assert accounts.group.splitlines() == ["root:x:0:", www] and accounts.user == "33:33"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError) as e:
        plan_accounts(Sysroot(str(empty)), AccountsSpec(user="www-data", package_sysroot=True), "bookworm")
    assert "`/usr/share/base-passwd/passwd.master`" in e.value.message and "base-passwd" in (e.value.hint or "")


def test_generated_files_copy_the_host_lines(workspace, cli):
    workspace.write("app/BUILD.toml", '[[image]]\nname = "i"\nbinaries = ["/usr/bin/id"]\nuser = "daemon"\n'
                                      'groups = ["adm"]\n')
    r = cli("build", "//app:i", "--no-load", cwd=workspace.root)
    assert r.returncode == 0, r.stderr
    tarball = next(workspace.root.glob("**/app/i/image.tar"), None) or next(workspace.root.glob("**/image.tar"))
    passwd = _image_file(tarball, "/etc/passwd").decode().splitlines()
    group = _image_file(tarball, "/etc/group").decode().splitlines()
    host = subprocess.run(["getent", "passwd", "daemon"], capture_output=True, text=True, check=True).stdout.strip()
    assert passwd == ["root:x:0:0:root:/root:/bin/sh", host]
    gid = host.split(":")[3]
    host_group = subprocess.run(["getent", "group", gid], capture_output=True, text=True, check=True).stdout.strip()
    adm = subprocess.run(["getent", "group", "adm"], capture_output=True, text=True, check=True).stdout.strip()
    # Members the image does not have are dropped.
    assert group[1:] == [":".join(host_group.split(":")[:3]) + ":", ":".join(adm.split(":")[:3]) + ":"]


# ------------------------------------------------------------- owners and directories --

OWNED_IMAGE = """
[[image]]
name = "owned"
binaries = ["/bin/dash"]
dirs = [
    { path = "/var/lib/app", owner = "www-data", mode = "0750" },
    { path = "/var/lib/closed" },
    { path = "/srv/numbers", owner = "4321:8765", mode = "0700" },
]
files = [{ src = "hello", dest = "/etc/app/hello", owner = "www-data:adm", mode = "0640" }]
trees = [{ src = "/usr/share/base-passwd", owner = "daemon" }]
tag = "minibuild-test/accounts-owned:latest"
"""


def _getent(db: str, key: str) -> list[str]:
    return subprocess.run(["getent", db, key], capture_output=True, text=True, check=True).stdout.strip().split(":")


@pytest.mark.docker
def test_owned_directories_and_files_in_the_engine(workspace, cli, docker_engine, tmp_path):
    workspace.write("app/hello", "hello\n")
    workspace.write("app/BUILD.toml", OWNED_IMAGE)
    r = cli("build", "//app:owned", cwd=workspace.root)
    assert r.returncode == 0, r.stderr
    image = "minibuild-test/accounts-owned:latest"
    run = [docker_engine, "run", "--rm", "--user", "www-data", image, "-c"]
    script = 'echo x > /var/lib/app/f && read a < /var/lib/app/f && read b < /etc/app/hello && echo "$a $b"'
    ok = subprocess.run([*run, script], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and ok.stdout == "x hello\n", (ok.stdout, ok.stderr)
    # A new named volume on the directory starts with its owner and mode: the account writes there too.
    volume = f"minibuild-test-accounts-{tmp_path.name}"
    try:
        vol = subprocess.run([docker_engine, "run", "--rm", "--user", "www-data", "-v", f"{volume}:/var/lib/app", image,
                              "-c", "echo y > /var/lib/app/g"], capture_output=True, text=True, timeout=120)
        assert vol.returncode == 0, vol.stderr
    finally:
        subprocess.run([docker_engine, "volume", "rm", volume], capture_output=True)
    # A directory without an owner is root's: the same write is refused there.
    refused = subprocess.run([*run, "echo x > /var/lib/closed/f"], capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "Permission denied" in refused.stderr, (refused.stdout, refused.stderr)
    # What the engine unpacked: `docker export` of a container of the image.
    container = subprocess.run([docker_engine, "create", image], capture_output=True, text=True,
                               check=True).stdout.strip()
    try:
        exported = tmp_path / "export.tar"
        subprocess.run([docker_engine, "export", "-o", str(exported), container], check=True)
    finally:
        subprocess.run([docker_engine, "rm", container], capture_output=True)
    www, adm = _getent("passwd", "www-data"), _getent("group", "adm")
    with tarfile.open(exported) as tar:
        def owner(path: str) -> tuple[int, int, int]:
            m = tar.getmember(path)
            return m.uid, m.gid, m.mode & 0o7777
        assert owner("var/lib/app") == (int(www[2]), int(www[3]), 0o750)
        assert owner("etc/app/hello") == (int(www[2]), int(adm[2]), 0o640)
        assert owner("srv/numbers") == (4321, 8765, 0o700)
        assert owner("var/lib/closed") == (0, 0, 0o755)
        daemon = _getent("passwd", "daemon")
        for path in ("usr/share/base-passwd", "usr/share/base-passwd/passwd.master"):
            assert owner(path)[:2] == (int(daemon[2]), int(daemon[3])), path
        assert owner("usr/share")[:2] == (0, 0)
    # The named owners are accounts of the image (ls -l would show their names).
    passwd = _image_file(next(workspace.root.glob("**/app/owned/image.tar")), "/etc/passwd").decode()
    assert ":".join(www) + "\n" in passwd


def test_owners_are_in_the_layer_headers_and_the_layers_are_reproducible(tmp_path, cli):
    digests = []
    for n in range(2):  # two workspaces with caches of their own: the layers are written twice
        ws = tmp_path / f"ws{n}"
        (ws / "app").mkdir(parents=True)
        (ws / "workspace.toml").write_text('[workspace]\nname = "test"\n')
        (ws / "app/hello").write_text("hello\n")
        (ws / "app/BUILD.toml").write_text(OWNED_IMAGE)
        r = cli("build", "//app:owned", "--no-load", cwd=ws, env={"MINIBUILD_CACHE": str(tmp_path / f"cache{n}")})
        assert r.returncode == 0, r.stderr
        tarball = next(ws.glob("**/app/owned/image.tar"))
        with tarfile.open(tarball) as outer:
            manifest = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
            digests.append(manifest[0]["Layers"])
            top = outer.extractfile(manifest[0]["Layers"][-1])
            with tarfile.open(fileobj=top) as layer:
                m = layer.getmember("srv/numbers")
                assert (m.uid, m.gid, m.mode, m.uname, m.gname) == (4321, 8765, 0o700, "", "")
    assert digests[0] == digests[1]


def test_an_unknown_owner_is_exit_2(workspace, cli):
    workspace.write("app/BUILD.toml", '[[image]]\nname = "i"\nbinaries = ["/bin/dash"]\n'
                                      'dirs = [{ path = "/data", owner = "root" }]\n'
                                      'files = [{ src = "/etc/hostname", from = "sysroot", owner = "daemon" }, '
                                      '{ src = "/etc/hosts", from = "sysroot", owner = "postgress" }]\n')
    r = cli("build", "//app:i", "--no-load", cwd=workspace.root)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "`owner` of `files[1]` (app/BUILD.toml:5) names the account `postgress`, which is not in `/etc/passwd` " \
           "of sysroot `/`" in r.stderr, r.stderr


@pytest.mark.docker
def test_an_image_on_a_base_keeps_the_base_accounts_unless_it_declares_its_own(workspace, cli, docker_engine):
    workspace.write("app/hello", "hello\n")
    workspace.write("app/BUILD.toml", """
[[image]]
name = "base"
binaries = ["/usr/bin/id"]
user = "www-data"
tag = "minibuild-test/accounts-base:latest"

[[image]]
name = "derived"
base = ":base"
files = [{ src = "hello", dest = "/etc/hello" }]
tag = "minibuild-test/accounts-derived:latest"

[[image]]
name = "own"
base = ":base"
user = "daemon"
tag = "minibuild-test/accounts-derived-own:latest"
""")
    r = cli("build", "//app:derived", "//app:own", cwd=workspace.root)
    assert r.returncode == 0, r.stderr
    out = _docker_id(docker_engine, "minibuild-test/accounts-derived:latest")
    assert out.returncode == 0 and out.stdout == _host_id("www-data"), (out.stdout, out.stderr)
    out = _docker_id(docker_engine, "minibuild-test/accounts-derived-own:latest")
    assert out.returncode == 0 and out.stdout == _host_id("daemon"), (out.stdout, out.stderr)


def test_bad_owners_and_directories_are_exit_2(workspace, cli):
    cases = {
        'dirs = [{ path = "/d", owner = "a b" }]': "owner `a b` must be",
        'dirs = [{ path = "relative" }]': "directory",
        'files = [{ src = "passwd", dest = "/etc/passwd" }]\ndirs = [{ path = "/d", owner = "www-data" }]':
            "`owner` of `dirs[0]` (app/BUILD.toml:5) names the account `www-data`, which cannot be looked up: "
            "the image ships its own /etc/passwd",
        'files = [{ src = "passwd", dest = "/d" }]\ndirs = [{ path = "/d" }]': "two different contents for `/d`",
    }
    workspace.write("app/passwd", "root:x:0:0:root:/root:/bin/sh\n")
    for attrs, message in cases.items():
        workspace.write("app/BUILD.toml", f'[[image]]\nname = "i"\nbinaries = ["/bin/dash"]\n{attrs}\n')
        r = cli("build", "//app:i", "--no-load", cwd=workspace.root)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, (attrs, r.stderr)
