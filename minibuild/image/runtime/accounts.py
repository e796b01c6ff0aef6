"""The image's /etc/passwd and /etc/group: root, the account it runs as and the accounts it switches to,
copied from the sysroot's account database (docs/runtime.md, "accounts").

A host sysroot has /etc/passwd and /etc/group; an unpacked package sysroot has none (base-passwd's
postinst writes them from its masters), so its `/usr/share/base-passwd/{passwd,group}.master` are read
instead. Lines are copied as they are (uid, gid, home, shell); a group keeps only members the image has.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from minibuild.elf.sysroot import Sysroot
from minibuild.errors import InputError

# Where each database is read, in order: the installed file, then base-passwd's master.
_SOURCES = {"passwd": ("/etc/passwd", "/usr/share/base-passwd/passwd.master"),
            "group": ("/etc/group", "/usr/share/base-passwd/group.master")}
NONROOT = "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin"
NONROOT_GROUP = "nonroot:x:65532:"


@dataclass(frozen=True)
class NewUser:
    """An account the image declares with its ids (`users = [{ name, uid, gid, home, shell }]`), as a maintainer
    script's `adduser --system` makes it on Debian; `origin` (`users[1]`) names it in messages."""

    name: str
    uid: int
    gid: int
    home: str = "/nonexistent"
    shell: str = "/usr/sbin/nologin"
    gecos: str = ""
    origin: str = ""

    def fields(self) -> list[str]:
        return [self.name, "x", str(self.uid), str(self.gid), self.gecos, self.home, self.shell]


@dataclass(frozen=True)
class NewGroup:
    """A group the image declares with its id (`groups = [{ name, gid }]`)."""

    name: str
    gid: int
    origin: str = ""


@dataclass(frozen=True)
class AccountsSpec:
    """`user`, `users`, `groups` and owners as the BUILD file says them; `ships_passwd`: the image's own
    /etc/passwd replaces the generated one, so `user` and `users` are left for it to resolve at run time."""

    user: str = ""
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    owners: tuple[str, ...] = ()  # every `owner` of `files` and `dirs`: named accounts are added too
    # owner -> the first entry naming it (`dirs[0]` (app/BUILD.toml:4)), for messages only: not in the action key,
    # so that a line moved in BUILD.toml resolves nothing anew.
    owner_origins: tuple[tuple[str, str], ...] = field(default=(), compare=False)
    new_users: tuple[NewUser, ...] = ()  # accounts declared with their ids, not copied from the sysroot
    new_groups: tuple[NewGroup, ...] = ()
    ships_passwd: bool = False
    package_sysroot: bool = False  # for the hint when the sysroot has no account database


@dataclass(frozen=True)
class Accounts:
    passwd: str
    group: str
    user: str  # the config's User as numbers ("33:33"); "" for root or left to a shipped /etc/passwd
    owners: Mapping[str, tuple[int, int]]  # each `owner` as written -> uid, gid


class _Database:
    def __init__(self, fs: Sysroot, kind: str, spec: AccountsSpec, sysroot_name: str) -> None:
        self.kind, self.fs, self.spec, self.sysroot = kind, fs, spec, sysroot_name
        self.path: str | None = None
        self.lines: dict[str, list[str]] = {}
        for candidate in _SOURCES[kind]:
            look = fs.lookup(candidate)
            if look.realpath is None or look.st is None:
                continue
            with open(fs.host(look.realpath), encoding="utf-8", errors="replace") as f:
                for line in f:
                    fields = line.rstrip("\n").split(":")
                    if len(fields) >= (7 if kind == "passwd" else 4) and fields[0] and not fields[0].startswith("#"):
                        self.lines.setdefault(fields[0], fields)
            self.path = candidate
            return

    def get(self, name: str, what: str) -> list[str]:
        if self.path is None:
            where = " or ".join(f"`{p}`" for p in _SOURCES[self.kind])
            hint = ("add `base-passwd` to the sysroot's `packages` in workspace.toml and run `minibuild lock`; "
                    "the lock's packages do not include it" if self.spec.package_sysroot
                    else "give the account as numbers (`\"1000:1000\"`), or ship an /etc/passwd with `files`")
            raise InputError(f"{what} `{name}`: sysroot `{self.sysroot}` has no {where}", hint=hint)
        fields = self.lines.get(name)
        if fields is None:
            close = difflib.get_close_matches(name, list(self.lines), n=5, cutoff=0.5)
            names = ", ".join(f"`{n}`" for n in (close or sorted(self.lines)[:12]))
            declare = (f'users = [{{ name = "{name}", uid = 999 }}]' if self.kind == "passwd"
                       else f'groups = [{{ name = "{name}", gid = 999 }}]')
            raise InputError(f"{what} `{name}`, which is not in `{self.path}` of sysroot `{self.sysroot}`",
                             hint=f"{'close names' if close else 'it has'}: {names}; or declare it with its ids "
                                  f'(`{declare}`, docs/runtime.md), or give it as '
                                  'numbers (`"UID:GID"`)')
        return fields

    def by_id(self, number: int) -> list[str] | None:
        return next((f for f in self.lines.values() if f[2] == str(number)), None)

    def where(self) -> str:
        return f"`{self.path}` of sysroot `{self.sysroot}`"


def _declare(spec: AccountsSpec, passwd: dict[str, list[str]], group: dict[str, list[str]],
             db: Callable[[str], _Database]) -> None:
    """Add the declared groups, then the declared users (each with its primary group: a declared one, the
    sysroot's of that gid, or a new one of its own name, as `adduser --system --group` makes). A name or id
    another declared account or the sysroot's database already has is an error naming both."""

    origins: dict[str, dict[str, str]] = {"passwd": {}, "group": {}}  # declared so far: name -> origin

    def check(kind: str, table: dict[str, list[str]], name: str, number: int, what: str) -> None:
        noun, idname = ("account", "uid") if kind == "passwd" else ("group", "gid")
        declared = origins[kind]
        taken = [(f, f"`{declared[f[0]]}`" if f[0] in declared else "the image") for f in table.values()]
        taken += [(f, db(kind).where()) for f in db(kind).lines.values()]
        for fields, where in taken:
            if fields[0] == name or fields[2] == str(number):
                same = f"`{name}`" if fields[0] == name else f"{idname} {number}"
                copy = f', or name the sysroot\'s as a string (`"{name}"`) to copy it' if fields[0] == name \
                    and where.startswith("`/") else ""
                raise InputError(f"{what} declares the {noun} `{name}` with {idname} {number}, but {same} is "
                                 f"already `{fields[0]}` ({idname} {fields[2]}) of {where}",
                                 hint=f"give the {noun} a name and {idname} of its own{copy}")

    for g in spec.new_groups:
        check("group", group, g.name, g.gid, f"`{g.origin or 'groups'}`")
        group[g.name] = [g.name, "x", str(g.gid), ""]
        origins["group"][g.name] = g.origin or "groups"
    for u in spec.new_users:
        check("passwd", passwd, u.name, u.uid, f"`{u.origin or 'users'}`")
        passwd[u.name] = u.fields()
        origins["passwd"][u.name] = u.origin or "users"
        if any(f[2] == str(u.gid) for f in group.values()):
            continue
        found = db("group").by_id(u.gid)
        if found is None:
            check("group", group, u.name, u.gid, f"`{u.origin or 'users'}` (for the account's primary group)")
            found = [u.name, "x", str(u.gid), ""]
            origins["group"][u.name] = u.origin or "users"
        group.setdefault(found[0], found)


def plan_accounts(fs: Sysroot, spec: AccountsSpec, sysroot_name: str) -> Accounts:
    """The two files and the config's numeric user. Every sysroot path read is in `fs.probed`; messages name
    the sysroot `sysroot_name`, as the workspace does."""
    passwd: dict[str, list[str]] = {"root": "root:x:0:0:root:/root:/bin/sh".split(":")}
    group: dict[str, list[str]] = {"root": "root:x:0:".split(":")}
    dbs: dict[str, _Database] = {}

    def db(kind: str) -> _Database:
        if kind not in dbs:
            dbs[kind] = _Database(fs, kind, spec, sysroot_name)
        return dbs[kind]

    def add_group_by_gid(gid: str, fallback: str) -> str:
        found = next((g for g in group.values() if g[2] == gid), None)
        if found is None and gid.isdigit():
            found = db("group").by_id(int(gid))
        if found is None:
            found = [fallback, "x", gid, ""]
        group.setdefault(found[0], found)
        return found[0]

    def add_user(name: str, what: str) -> list[str]:
        fields = passwd.get(name) or db("passwd").get(name, what)
        passwd.setdefault(name, fields)
        add_group_by_gid(fields[3], name)
        return fields

    def account(text: str, what: str, generate: bool) -> tuple[str, str]:
        """uid and gid of `NAME[:GROUP]`, `UID[:GID]` or `nonroot`, adding the lines they need; `generate`:
        numbers get entries of their own, so that getpwuid() finds the process's own uid."""
        name, _, group_part = text.partition(":")
        if name == "nonroot":
            passwd.setdefault("nonroot", NONROOT.split(":"))
            group.setdefault("nonroot", NONROOT_GROUP.split(":"))
            uid, gid = "65532", "65532"
        elif name.isdigit():
            uid, gid = name, name
            if generate and not any(f[2] == uid for f in passwd.values()):
                passwd[f"user{uid}"] = [f"user{uid}", "x", uid, group_part if group_part.isdigit() else uid, "",
                                        "/", "/sbin/nologin"]
        else:
            if spec.ships_passwd:
                raise InputError(f"{what} names the account `{name}`, which cannot be looked up: the image ships its "
                                 "own /etc/passwd",
                                 hint="give it as numbers (`\"UID:GID\"`)")
            fields = add_user(name, f"{what} names the account")
            uid, gid = fields[2], fields[3]
        if group_part and not group_part.isdigit():
            fields = group.get(group_part) or db("group").get(group_part, f"{what} names the group")
            group.setdefault(group_part, fields)
            gid = fields[2]
        elif group_part:
            gid = group_part
        if generate or not name.isdigit():
            add_group_by_gid(gid, f"group{gid}")
        return uid, gid

    if spec.ships_passwd and (spec.new_users or spec.new_groups):
        raise InputError("`users` or `groups` declares accounts, but the image ships its own /etc/passwd, which "
                         "would replace them", hint="declare the accounts in the shipped file instead")
    _declare(spec, passwd, group, db)
    run_as = ""
    if not spec.ships_passwd:
        for name in spec.users:
            add_user(name, "`users` names the account")
        if spec.user and spec.user.partition(":")[0] not in ("root", "0"):
            run_as = ":".join(account(spec.user, "`user`", generate=True))
    origins = dict(spec.owner_origins)
    owners = {text: account(text, f"`owner` of {origins[text]}" if text in origins else "`owner`", generate=False)
              for text in spec.owners}
    for name in spec.groups:
        group.setdefault(name, group.get(name) or db("group").get(name, "`groups` names the group"))
    members = set(passwd)
    lines = [":".join([*g[:3], ",".join(m for m in g[3].split(",") if m in members)]) for g in group.values()]
    return Accounts(passwd="".join(":".join(f) + "\n" for f in passwd.values()),
                    group="".join(line + "\n" for line in lines), user=run_as,
                    owners={text: (int(uid), int(gid)) for text, (uid, gid) in owners.items()})


def merge_with_base(base: Mapping[str, str], own: Mapping[str, str], base_label: str) -> dict[str, str]:
    """The /etc/passwd and /etc/group texts of an image on a base that declares accounts: the base's lines, then
    the image's own that the base lacks. The same name with other ids, or the same id under another name, is an
    error naming both lines; the same account written alike (root, a sysroot account both copied) is kept once,
    as the base has it, and a group's members are those of both."""
    out = {}
    for kind in ("passwd", "group"):
        noun, idname = ("account", "uid") if kind == "passwd" else ("group", "gid")
        rows = {f[0]: f for f in _rows(base.get(kind, ""), kind)}
        for fields in _rows(own.get(kind, ""), kind):
            same_name = rows.get(fields[0])
            same_id = next((f for f in rows.values() if f[2] == fields[2]), None)
            other = same_name or same_id
            if other is None:
                rows[fields[0]] = fields
                continue
            ids = slice(2, 4 if kind == "passwd" else 3)  # uid and gid; a group's gid
            if other[0] != fields[0] or other[ids] != fields[ids]:
                raise InputError(f"the image's {noun} `{':'.join(fields)}` clashes with `{':'.join(other)}` of the "
                                 f"/etc/{kind} of its base `{base_label}`",
                                 hint=f"use the base's {noun} (name it, or declare it with the base's {idname}), or "
                                      f"give this one a name and {idname} of its own")
            if kind == "group":
                members = [m for m in other[3].split(",") if m]
                members += [m for m in fields[3].split(",") if m and m not in members]
                other[3] = ",".join(members)
        out[kind] = "".join(":".join(f) + "\n" for f in rows.values())
    return out


def _rows(text: str, kind: str) -> list[list[str]]:
    rows = [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]
    return [f for f in rows if len(f) >= (7 if kind == "passwd" else 4)]
