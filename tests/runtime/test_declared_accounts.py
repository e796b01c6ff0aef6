"""Accounts declared with their ids (`users = [{ name, uid, ... }]`, `groups = [{ name, gid }]`), and the accounts of
an image on a `base` merged with the base's (docs/runtime.md, "accounts"). What a process is called is what the
real engine's `id` prints; the expected lines are the ones the BUILD file declares."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from minibuild.elf.sysroot import Sysroot
from minibuild.errors import InputError
from minibuild.image.runtime.accounts import AccountsSpec, NewGroup, NewUser, merge_with_base, plan_accounts

DECLARED = """
[[image]]
name = "svc"
binaries = ["/usr/bin/id"]
user = "mbsvc"
users = ["daemon", { name = "mbsvc", uid = 4242, gid = 4243, home = "/var/lib/mbsvc", gecos = "a service" }]
groups = [{ name = "mbsvcgrp", gid = 4243 }]
dirs = [{ path = "/var/lib/mbsvc", owner = "mbsvc", mode = "0700" }]
tag = "minibuild-test/declared-svc:latest"

[[image]]
name = "derived"
base = ":svc"
user = "daemon"
users = [{ name = "mbother", uid = 4244 }]
tag = "minibuild-test/declared-derived:latest"
"""


def _id(docker: str, image: str, *args: str) -> str:
    out = subprocess.run([docker, "run", "--rm", *args, image], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _host_id(name: str) -> str:
    return subprocess.run(["id", name], capture_output=True, text=True, check=True).stdout


@pytest.mark.docker
def test_a_declared_account_is_named_by_user_and_owner_and_merged_into_a_derived_image(workspace, cli,
                                                                                         docker_engine):
    workspace.write("app/BUILD.toml", DECLARED)
    r = cli("build", "//app:svc", "//app:derived", cwd=workspace.root)
    assert r.returncode == 0, r.stderr
    svc = "minibuild-test/declared-svc:latest"
    assert _id(docker_engine, svc) == "uid=4242(mbsvc) gid=4243(mbsvcgrp) groups=4243(mbsvcgrp)\n"
    stat = subprocess.run([docker_engine, "run", "--rm", "--entrypoint", "/usr/bin/id", svc, "-un"],
                          capture_output=True, text=True, timeout=120)
    assert stat.stdout == "mbsvc\n", stat.stderr
    # The derived image has the base's accounts and its own: the declared one and the sysroot's daemon.
    derived = "minibuild-test/declared-derived:latest"
    assert _id(docker_engine, derived) == _host_id("daemon")
    assert _id(docker_engine, derived, "--user", "mbsvc").startswith("uid=4242(mbsvc) gid=4243(mbsvcgrp)")
    assert _id(docker_engine, derived, "--user", "mbother") == \
        "uid=4244(mbother) gid=4244(mbother) groups=4244(mbother)\n"
    passwd = subprocess.run([docker_engine, "run", "--rm", "--entrypoint", "/usr/bin/id", derived, "-nu", "4242"],
                            capture_output=True, text=True, timeout=120)
    assert passwd.stdout == "mbsvc\n", passwd.stderr


def _masters(tmp_path: Path) -> Sysroot:
    root = tmp_path / "sysroot"
    (root / "usr/share/base-passwd").mkdir(parents=True, exist_ok=True)
    for name in ("passwd.master", "group.master"):
        (root / "usr/share/base-passwd" / name).write_bytes(Path("/usr/share/base-passwd", name).read_bytes())
    return Sysroot(str(root))


def test_declared_lines_on_a_package_sysroot(tmp_path):
    spec = AccountsSpec(user="postgres:postgres", owners=("postgres",), new_groups=(NewGroup("postgres", 999),),
                        new_users=(NewUser("postgres", 999, 999, "/var/lib/postgresql", "/bin/sh", "PG admin"),
                                   NewUser("redis", 998, 998, "/var/lib/redis")))
    accounts = plan_accounts(_masters(tmp_path), spec, "bookworm")
    assert accounts.passwd.splitlines() == ["root:x:0:0:root:/root:/bin/sh",
                                            "postgres:x:999:999:PG admin:/var/lib/postgresql:/bin/sh",
                                            "redis:x:998:998::/var/lib/redis:/usr/sbin/nologin"]
    assert accounts.group.splitlines() == ["root:x:0:", "postgres:x:999:", "redis:x:998:"]
    assert accounts.user == "999:999" and accounts.owners == {"postgres": (999, 999)}
    # A declared account whose gid is a group of the sysroot gets that group (adm, gid 4 in base-passwd's masters).
    accounts = plan_accounts(_masters(tmp_path), AccountsSpec(new_users=(NewUser("logs", 997, 4),)), "bookworm")
    assert accounts.group.splitlines()[1].startswith("adm:*:4:")


CLASHES = {
    # (users, groups) -> the message
    ('[{ name = "www-data", uid = 4242 }]', '[]'):
        "`users[0]` declares the account `www-data` with uid 4242, but `www-data` is already `www-data` (uid 33) of "
        "`/etc/passwd` of sysroot `/`",
    ('[{ name = "mbsvc", uid = 33 }]', '[]'):
        "`users[0]` declares the account `mbsvc` with uid 33, but uid 33 is already `www-data` (uid 33) of "
        "`/etc/passwd` of sysroot `/`",
    ('[{ name = "mbsvc", uid = 4242 }, { name = "mbother", uid = 4242 }]', '[]'):
        "`users[1]` declares the account `mbother` with uid 4242, but uid 4242 is already `mbsvc` (uid 4242) of "
        "`users[0]`",
    ('[]', '[{ name = "mbsvc", gid = 4 }]'):
        "`groups[0]` declares the group `mbsvc` with gid 4, but gid 4 is already `adm` (gid 4) of `/etc/group`",
    ('[{ name = "mbsvc", uid = 0 }]', '[]'):
        "`users[0]` declares the account `mbsvc` with uid 0, but uid 0 is already `root` (uid 0) of the image",
    ('["daemon", "daemon"]', '[]'): "`daemon` is listed twice",
    ('[{ name = "mbsvc", uid = -1 }]', '[]'): "-1 is not a user or group id",
    ('[{ name = "mbsvc", uid = 4242, home = "var" }]', '[]'): "`var` must be an absolute path",
}


def test_each_clash_is_exit_2_naming_both(workspace, cli):
    for (users, groups), message in CLASHES.items():
        workspace.write("app/BUILD.toml", f'[[image]]\nname = "i"\nbinaries = ["/usr/bin/id"]\nusers = {users}\n'
                                          f'groups = {groups}\n')
        r = cli("build", "//app:i", "--no-load", cwd=workspace.root)
        assert r.returncode == 2 and message in " ".join(r.stderr.split()) and "Traceback" not in r.stderr, \
            (users, r.stderr)


def test_declared_accounts_with_a_shipped_passwd_are_exit_2(workspace, cli):
    workspace.write("app/passwd", "root:x:0:0:root:/root:/bin/sh\n")
    workspace.write("app/BUILD.toml", '[[image]]\nname = "i"\nbinaries = ["/usr/bin/id"]\n'
                                      'users = [{ name = "mbsvc", uid = 4242 }]\n'
                                      'files = [{ src = "passwd", dest = "/etc/passwd" }]\n')
    r = cli("build", "//app:i", "--no-load", cwd=workspace.root)
    assert r.returncode == 2 and "the image ships its own /etc/passwd" in r.stderr, r.stderr


def test_a_derived_account_that_clashes_with_the_base_is_exit_2(workspace, cli):
    workspace.write("app/BUILD.toml", DECLARED.replace('{ name = "mbother", uid = 4244 }',
                                                       '{ name = "mbother", uid = 4242 }'))
    r = cli("build", "//app:derived", "--no-load", cwd=workspace.root)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert ("the image's account `mbother:x:4242:4242::/nonexistent:/usr/sbin/nologin` clashes with "
            "`mbsvc:x:4242:4243:a service:/var/lib/mbsvc:/usr/sbin/nologin` of the /etc/passwd of its base "
            "`//app:svc`") in " ".join(r.stderr.split()), r.stderr


def test_merge_keeps_the_base_lines_and_joins_group_members():
    base = {"passwd": "root:x:0:0:root:/root:/bin/bash\nweb:x:33:33::/:/bin/false\n",
            "group": "root:x:0:\nweb:x:33:web\n"}
    own = {"passwd": "root:x:0:0:root:/root:/bin/sh\napp:x:5:33::/:/bin/false\n", "group": "root:x:0:\nweb:x:33:app\n"}
    merged = merge_with_base(base, own, "//b:b")
    assert merged["passwd"] == "root:x:0:0:root:/root:/bin/bash\nweb:x:33:33::/:/bin/false\napp:x:5:33::/:/bin/false\n"
    assert merged["group"] == "root:x:0:\nweb:x:33:web,app\n"
    with pytest.raises(InputError) as e:
        merge_with_base(base, {"passwd": "", "group": "other:x:33:\n"}, "//b:b")
    assert "`other:x:33:` clashes with `web:x:33:web` of the /etc/group of its base `//b:b`" in e.value.message
