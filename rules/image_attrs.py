"""The attribute model of the `image` rule: what a BUILD file may say of an image, validated as it is read.

The docstring under each attribute is its documentation (`minibuild rules`, the README's rule table).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Discriminator, Field, Tag, ValidationInfo, field_validator, model_validator

from minibuild.rule import Attrs, Dep, LabelAttr, PathOrLabel
from minibuild_rules.common import Mode, Size, image_path

ACCOUNT = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\$?\Z")  # a name as useradd takes it


def check_account(v: str, what: str) -> str:
    if v and not all(ACCOUNT.match(part) or part.isdigit() for part in v.split(":", 1)):
        raise ValueError(f'{what} `{v}` must be `"NAME"`, `"NAME:GROUP"`, `"UID"` or `"UID:GID"`')
    return v


def _owner(v: str) -> str:
    return check_account(v, "owner")


# Who owns an entry (`files`, `dirs`, `trees`): an account name, `NAME:GROUP`, `UID` or `UID:GID`; empty: root.
Owner = Annotated[str, AfterValidator(_owner)]


def check_pattern(pattern: str, what: str, forms: str) -> None:
    """A path pattern (fnmatch) of `trees` or `packages`: not empty, no `..`, every `[` closed."""
    parts = pattern.strip("/").split("/")
    if not pattern.strip("/") or ".." in parts or "" in parts or not _brackets_closed(pattern):
        raise ValueError(f"{what} `{pattern}` must be {forms}, without `..`, empty parts or an unclosed `[`")


def _brackets_closed(pattern: str) -> bool:
    """Whether every `[` opens a class that a `]` closes (`[!...]`, `[]...]` as fnmatch reads them)."""
    i = 0
    while i < len(pattern):
        if pattern[i] == "[":
            j = i + 1 + (pattern[i + 1:i + 2] == "!")
            j += pattern[j:j + 1] == "]"
            end = pattern.find("]", j)
            if end < 0:
                return False
            i = end
        i += 1
    return True


def check_once(keys: list[str], what: str) -> None:
    """A list attribute names each thing once: the first one listed twice is the error."""
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            raise ValueError(f"{what}`{key}` is listed twice")
        seen.add(key)


def account_name(v: str) -> str:
    if not ACCOUNT.match(v):
        raise ValueError(f"`{v}` must be an account name (`postgres`)")
    return v


def account_id(v: int) -> int:
    if not 0 <= v <= 2**31 - 2:
        raise ValueError(f"{v} is not a user or group id (0 to 2147483646)")
    return v


class FileSpec(Attrs):
    src: PathOrLabel
    """A file of the package (a path relative to its BUILD.toml), or the label of a `files` or `genrule` target;
    with `from = "sysroot"`, an absolute path of the sysroot."""
    from_: Literal["package", "sysroot"] = Field("package", alias="from")
    """Where `src` is: `"package"` (or a label), or `"sysroot"`: a file of the sysroot, as it is there (the
    symlinks on its path too when `dest` is the same path; an ELF file then comes with its closure)."""
    dest: str | None = None
    """Where it goes in the image (an absolute path; ending in `/`: a directory). A `files` target's entries carry
    their own, so it may be left out for one; a sysroot file's is its own path."""
    mode: Mode | None = None
    """Permission bits, `"0644"`; unset: 0644 for a file, 0755 for a genrule's output, a `files` target's own,
    a sysroot file's own."""
    owner: Owner = ""
    """Who owns it in the image: an account of the sysroot or of `users` (`"www-data"`, `"NAME:GROUP"`) or
    `"UID:GID"`; unset: root."""

    @field_validator("dest")
    @classmethod
    def _dest(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if v.endswith("/") and v != "/":
            return image_path(v, "destination").rstrip("/") + "/"
        return image_path(v, "destination")

    @model_validator(mode="after")
    def _sysroot_src(self) -> FileSpec:
        if self.from_ == "sysroot" and (isinstance(self.src, Dep) or not self.src.startswith("/")):
            raise ValueError(f'with `from = "sysroot"`, `src` is an absolute path of the sysroot, not `{self.src}` '
                             '(e.g. `{ src = "/etc/nginx/mime.types", from = "sysroot" }`)')
        if self.from_ == "sysroot":
            image_path(self.src, "source")
        return self


class DirAttr(Attrs):
    path: str
    """The directory (an absolute path; its parents are made too, owned by root)."""
    owner: Owner = ""
    """Who owns it: an account of the sysroot or of `users` (`"www-data"`, `"NAME:GROUP"`) or `"UID:GID"`; unset:
    root."""
    mode: Mode | None = None
    """Permission bits, `"0750"`, `"1777"`; unset: 0755, and 1777 for `/tmp` (everyone's scratch directory)."""

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        return image_path(v, "directory")


class LinkAttr(Attrs):
    path: str
    """Where the symlink is (an absolute path; its parents are made too, owned by root)."""
    target: str
    """What it points to, written as it is: absolute (`/run`) or relative to its directory (`../run`)."""

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        v = image_path(v, "link")
        if v == "/":
            raise ValueError("a link cannot replace `/`; name a path below it (`/var/run`)")
        return v

    @field_validator("target")
    @classmethod
    def _target(cls, v: str) -> str:
        if not v or "\0" in v:
            raise ValueError("a link's target is a non-empty path (`/run`, `../run`)")
        return v


class TreeAttr(Attrs):
    src: str
    """A directory of the sysroot, copied to the same path in the image."""
    include: list[str] = []
    """Only what matches: names (`*.sql`) or paths relative to `src` (`/timezonesets`, `extension/plpgsql*`), a
    directory with everything below it; empty: everything."""
    exclude: list[str] = []
    """Names (`test`, `*.pyc`) or paths relative to `src` (`lib-dynload/_tkinter*`) left out (`exclude` wins
    over `include`)."""
    owner: Owner = ""
    """Who owns `src` and everything copied below it: an account of the sysroot or `"UID:GID"`; unset: root."""

    @field_validator("src")
    @classmethod
    def _src(cls, v: str) -> str:
        return image_path(v, "tree")

    @field_validator("include", "exclude")
    @classmethod
    def _patterns(cls, v: list[str], info: ValidationInfo) -> list[str]:
        for pattern in v:
            check_pattern(pattern, f"{info.field_name} pattern",
                          "a name (`*.sql`) or a path relative to `src` (`extension/plpgsql*`)")
        return v


class UserAttr(Attrs):
    name: str
    """The account's name (`postgres`)."""
    uid: int
    """Its user id (`999`)."""
    gid: int | None = None
    """Its primary group's id: a group of `groups`, of the sysroot, or else a new group of the account's name;
    unset: the uid."""
    home: str = "/nonexistent"
    """Its home directory (not created: give it a `dirs` entry if the program writes there)."""
    shell: str = "/usr/sbin/nologin"
    """Its login shell."""
    gecos: str = ""
    """The comment field (`PostgreSQL administrator`)."""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return account_name(v)

    @field_validator("uid", "gid")
    @classmethod
    def _id(cls, v: int | None) -> int | None:
        return v if v is None else account_id(v)

    @field_validator("home", "shell")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/") or ":" in v or "\n" in v:
            raise ValueError(f"`{v}` must be an absolute path without `:`")
        return v

    @field_validator("gecos")
    @classmethod
    def _gecos(cls, v: str) -> str:
        if ":" in v or "\n" in v:
            raise ValueError(f"gecos `{v}` cannot hold `:` or a line end")
        return v


class GroupAttr(Attrs):
    name: str
    """The group's name (`postgres`)."""
    gid: int
    """Its group id (`999`)."""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return account_name(v)

    @field_validator("gid")
    @classmethod
    def _id(cls, v: int) -> int:
        return account_id(v)


def _name_or_table(v: object) -> str:
    return "table" if isinstance(v, dict | Attrs) else "name"


# A name of the sysroot's database, or a table declaring an account: errors speak of the form that was given.
UserEntry = Annotated[Annotated[str, Tag("name")] | Annotated[UserAttr, Tag("table")], Discriminator(_name_or_table)]
GroupEntry = Annotated[Annotated[str, Tag("name")] | Annotated[GroupAttr, Tag("table")], Discriminator(_name_or_table)]


PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?\Z")  # a Debian package name, an architecture maybe


class PackageAttr(Attrs):
    name: str
    """The package (`postgresql-15`; `NAME:ARCH` for one architecture of a multiarch package)."""
    docs: bool = False
    """Keep its documentation, man and info pages and translations (`/usr/share/{doc,man,info,locale}`)."""
    exclude: list[str] = []
    """Paths left out, as `trees`' `exclude`: names (`bitcode`: any file or directory so named, with everything
    below it) or absolute paths (`/usr/lib/postgresql/15/lib/llvmjit*`); `*` matches across `/`."""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not PACKAGE.match(v):
            raise ValueError(f"`{v}` must be a Debian package name (`nginx-common`, `libc6:amd64`)")
        return v

    @field_validator("exclude")
    @classmethod
    def _exclude(cls, v: list[str]) -> list[str]:
        for pattern in v:
            check_pattern(pattern, "exclude pattern", "a name (`bitcode`, `*.a`) or an absolute path "
                          "(`/usr/lib/postgresql/15/lib/llvmjit*`)")
            if "/" in pattern and not pattern.startswith("/"):
                raise ValueError(f"exclude pattern `{pattern}` must be a name (`bitcode`, `*.a`) or an absolute path "
                                 "(`/usr/lib/postgresql/15/lib/llvmjit*`)")
        return v


class ImageAttrs(Attrs):
    sysroot: str | None = None
    """Where binaries and libraries come from: the name of a package sysroot (`[sysroots.NAME]` in workspace.toml,
    docs/packages.md) or an absolute host path; unset: the workspace's (and for a platform, the platform's)."""
    base: LabelAttr | None = None
    """An `image` target whose layers are reused as they are; the config is inherited as a Dockerfile `FROM`
    would (env and labels merge, an entrypoint replaces)."""
    binaries: list[PathOrLabel] = []
    """Programs: absolute paths in the sysroot, or labels of `genrule` targets (shipped in `/usr/local/bin`);
    each comes with its ELF closure."""
    files: list[FileSpec] = []
    """More files: `{ src, dest, mode, owner }` from the package, or `{ src, from = "sysroot" }` from the sysroot."""
    entrypoint: list[str] = []
    """The image's entrypoint; empty: the only binary, if there is one."""
    cmd: list[str] = []
    """Default arguments (the config's `Cmd`)."""
    env: dict[str, str] = {}
    """Environment variables; `PATH` defaults to the usual one (unless a `base` brings its own)."""
    workdir: str = ""
    """The working directory of the image's processes."""
    user: str = ""
    """The account processes run as: a name of the sysroot's `/etc/passwd` (`"www-data"`, copied with its group) or
    of an account `users` declares, `"NAME:GROUP"`, `"UID:GID"` (an entry generated), or `"nonroot"` (uid/gid 65532)."""
    users: list[UserEntry] = []
    """More accounts the program switches to: names of the sysroot's `/etc/passwd` (`"www-data"`), copied with
    their groups, or accounts declared with their ids (`{ name = "postgres", uid = 999, gid = 999, home =
    "/var/lib/postgresql" }`, as a maintainer script's `adduser` makes them); `user` and `owner` may name either."""
    groups: list[GroupEntry] = []
    """More groups: names of the sysroot's `/etc/group` (`"adm"`), or groups declared with their id (`{ name =
    "postgres", gid = 999 }`)."""
    dirs: list[DirAttr] = []
    """Directories created empty with an owner and mode: `{ path = "/var/lib/app", owner = "www-data",
    mode = "0750" }` (a directory the image has anyway takes them too; one without either is made only where neither
    the image nor its `base` has it); a path listed twice is an error."""
    links: list[LinkAttr] = []
    """Symlinks the image holds: `{ path = "/var/run", target = "/run" }` (what a package's maintainer script or
    base-files makes); a path under one is made through it."""
    volumes: list[str] = []
    """Directories a container gets a volume on (the config's `Volumes`): each is in the image with the owner and
    mode of its `dirs` entry, so a new volume starts with them; without one, as the image or its `base` has it,
    else root's 0755."""
    tag: str | None = None
    """The tag the image is loaded as; unset: `<package>/<name>:latest`."""
    labels: dict[str, str] = {}
    """Labels of the image config."""
    annotations: dict[str, str] = {}
    """Annotations of the OCI manifest (and index)."""
    exposed_ports: list[str] = []
    """Ports the image exposes (`"8080/tcp"`)."""
    stop_signal: str = ""
    """The signal that stops the container (`"SIGTERM"`)."""
    max_size: Size | None = None
    """A budget for the uncompressed image (`"4MiB"`, bytes, `"3MB"`): a bigger image fails the build, naming its
    biggest files."""
    platforms: list[str] = []
    """`linux/amd64`, `linux/arm64`...: one image per platform (each from its sysroot in `workspace.toml`) in an
    OCI image index; empty: the workspace's sysroot only."""
    layering: Literal["shared", "single"] = "shared"
    """`shared`: the loader and libc, big libraries, other libraries, runtime files and the image's own files in
    layers that images of the workspace share byte for byte; `single`: one layer."""
    compression: Literal["gzip", "zstd", "none"] = "gzip"
    """How layers are compressed."""
    gzip_level: int = 1
    """0 (store) to 9 (smallest)."""
    nsswitch: bool | None = None
    """A minimal `/etc/nsswitch.conf` (and the NSS modules it names); unset: when the closure has glibc's
    `libc.so.6` (docs/runtime.md)."""
    ca_certificates: bool | None = None
    """The sysroot's CA bundle; unset: when the closure has libssl, libcrypto, libgnutls, libcurl or libnss3."""
    tzdata: bool | list[str] | None = None
    """Time zones: names (`Europe/Paris`); true: all of `/usr/share/zoneinfo`; unset: the zone of env `TZ`."""
    terminfo: bool | list[str] | None = None
    """Terminfo entries (`xterm`); true: all; unset: a small default set when the closure has libtinfo or
    libncurses."""
    libgcc_s: bool | None = None
    """`libgcc_s.so.1`; unset: when the closure imports `pthread_cancel`, `pthread_exit` or `backtrace`."""
    gconv: bool | list[str] | None = None
    """gconv modules: charsets (`UTF-16`); true: all; unset: five common charsets when `iconv_open` is used."""
    locales: bool | list[str] | None = None
    """Locales (`en_US.UTF-8`); true: all; unset: those of env `LANG`/`LC_*`."""
    python_stdlib: Literal["minimal", "full", "none"] = "minimal"
    """The standard library of a `python3.X` binary, every extension module resolved."""
    python_packages: list[str] = []
    """More sysroot directories for Python (a `dist-packages` package), copied whole."""
    trees: list[TreeAttr] = []
    """Sysroot directories copied with the ELF closure of every ELF file in them: `{ src, include, exclude }`."""
    packages: list[PackageAttr] = []
    """Debian packages of the sysroot whose files the image takes, as its package database lists them (dpkg's
    `info/*.list`, or the lock's), every ELF file with its closure, without `/usr/share/{doc,man,info,locale}`:
    `["nginx-common"]`, or `{ name = "postgresql-15", docs = true, exclude = ["bitcode"] }` to keep those and
    leave out more."""
    shell: bool | None = None
    """The sysroot's `/bin/sh` (its link followed: dash) with its closure; unset: a warning when something imports
    `popen` or `system` and the image has no `/bin/sh`; false: no warning."""
    ld_so_cache: bool = False
    """An `/etc/ld.so.cache` listing the image's libraries, for programs that `dlopen` by bare soname."""
    dpkg_status: bool = False
    """`/var/lib/dpkg/status.d/<package>` (and `.md5sums`) for each Debian package whose files the image holds, as
    distroless images have them, so image scanners see the packages (docs/packages.md)."""
    allow_secrets: list[str] = []
    """Files that look like private keys or credentials stop the build (docs/runtime.md): the image paths,
    directories or globs (`/app/keys/*`) of those meant to ship."""
    keep_setuid: bool = False
    """Keep setuid/setgid bits (dropped by default)."""
    probe: list[list[str]] = []
    """Commands run in the finished image under strace (`[["python3", "-c", "import ssl"]]`); what they look for
    and the sysroot has is added, with its closure (docs/probe.md)."""
    probe_timeout: int = 60
    """Seconds each probe command may run before it is stopped (its trace still counts), 1 to 3600."""
    loaded_before: dict[str, list[str]] = {}
    """Libraries the program dlopens after it has loaded others: `{ "/opt/app/plugin.so" = ["/opt/app/lib/libx.so.1"]
    }` lets the plugin's DT_NEEDED `libx.so.1` be the library already loaded, as glibc matches it by soname
    (docs/loader.md#g19); both must be in the image. A `probe` that sees the order needs no declaration."""

    @field_validator("user")
    @classmethod
    def _user(cls, v: str) -> str:
        return check_account(v, "user")

    @field_validator("users", "groups")
    @classmethod
    def _accounts(cls, v: list[str | UserAttr] | list[str | GroupAttr]) -> list[str | UserAttr] | list[str | GroupAttr]:
        check_once([x if isinstance(x, str) else x.name for x in v], "")
        for name in (x for x in v if isinstance(x, str)):
            if not ACCOUNT.match(name):
                raise ValueError(f"`{name}` must be an account name of the sysroot (`www-data`), not a number or a "
                                 "path")
        return v

    @field_validator("dirs")
    @classmethod
    def _dirs_once(cls, v: list[DirAttr]) -> list[DirAttr]:
        # Even alike: a path declared twice is a slip, and the last one winning silently hid an owner or mode.
        first: dict[str, int] = {}
        for i, d in enumerate(v):
            j = first.setdefault(d.path.rstrip("/") or "/", i)
            if j != i:
                raise ValueError(f"directory `{d.path}` is listed twice, as `dirs[{j}]` and `dirs[{i}]`; keep one "
                                 "entry with the owner and mode it needs")
        return v

    @field_validator("links")
    @classmethod
    def _links_once(cls, v: list[LinkAttr]) -> list[LinkAttr]:
        check_once([x.path for x in v], "link ")
        return v

    @field_validator("volumes")
    @classmethod
    def _volumes(cls, v: list[str]) -> list[str]:
        paths = [image_path(x, "volume").rstrip("/") or "/" for x in v]
        if "/" in paths:
            raise ValueError("a volume on `/` would hide the whole image; name a directory (`/var/lib/app`)")
        check_once(paths, "volume ")
        return paths

    @field_validator("packages", mode="before")
    @classmethod
    def _package_names(cls, v: object) -> object:
        # A bare name is the table with its defaults: `"sed"` is `{ name = "sed" }`.
        return [{"name": p} if isinstance(p, str) else p for p in v] if isinstance(v, list) else v

    @field_validator("packages")
    @classmethod
    def _packages_once(cls, v: list[PackageAttr]) -> list[PackageAttr]:
        check_once([p.name for p in v], "package ")
        return v

    @field_validator("python_packages")
    @classmethod
    def _packages(cls, v: list[str]) -> list[str]:
        return [image_path(x, "python package") for x in v]

    @field_validator("tzdata", "terminfo")
    @classmethod
    def _names(cls, v: bool | list[str] | None) -> bool | list[str] | None:
        for name in v if isinstance(v, list) else []:
            if not name or name.startswith("/") or ".." in name.split("/"):
                raise ValueError(f"`{name}` must be a name such as `Europe/Paris` or `xterm`, not a path")
        return v

    @field_validator("allow_secrets", mode="before")
    @classmethod
    def _allow_secrets(cls, v: object) -> object:
        if isinstance(v, bool):
            raise ValueError('allow_secrets names the secrets meant to ship, e.g. `allow_secrets = ["/app/deploy_key"]`'
                             "; `true` would let any secret through, and a failed build names what to list")
        if isinstance(v, list) and all(isinstance(x, str) for x in v):
            return [image_path(x, "allowed secret") for x in v]
        return v  # not a list of strings: pydantic says so

    @field_validator("binaries")
    @classmethod
    def _binaries(cls, v: list[str]) -> list[str]:
        return [b if isinstance(b, Dep) else image_path(b, "binary") for b in v]

    @field_validator("platforms")
    @classmethod
    def _platforms(cls, v: list[str]) -> list[str]:
        for p in v:
            parts = p.split("/")
            if len(parts) not in (2, 3) or parts[0] != "linux" or not all(parts):
                raise ValueError(f"platform `{p}` must look like `linux/amd64` or `linux/arm64/v8`")
        if len(set(v)) != len(v):
            raise ValueError("a platform is listed twice")
        return v

    @field_validator("probe")
    @classmethod
    def _probe(cls, v: list[list[str]]) -> list[list[str]]:
        for command in v:
            if not command or not command[0]:
                raise ValueError('each probe is a command with its arguments, e.g. `["python3", "-c", "import ssl"]`')
        return v

    @field_validator("probe_timeout")
    @classmethod
    def _probe_timeout(cls, v: int) -> int:
        if not 1 <= v <= 3600:
            raise ValueError("probe_timeout is 1 to 3600 seconds")
        return v

    @field_validator("loaded_before")
    @classmethod
    def _loaded_before(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        return {image_path(lib, "library"): [image_path(o, "loaded object") for o in objs] for lib, objs in v.items()}

    @field_validator("gzip_level")
    @classmethod
    def _level(cls, v: int) -> int:
        if not 0 <= v <= 9:
            raise ValueError("gzip_level is 0 (store) to 9 (smallest)")
        return v
