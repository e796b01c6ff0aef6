"""`image`: a minimal OCI image of programs from a sysroot, with their ELF closure and extra files.

    [[image]]
    name = "bash"
    binaries = ["/bin/bash"]
    files = [{ src = "bashrc", dest = "/etc/bash.bashrc", mode = "0644" }]
"""

from __future__ import annotations

import dataclasses
import re
from typing import Literal

from pydantic import field_validator

from minibuild.actions import Artifact
from minibuild.errors import InputError
from minibuild.executor import ActionRun
from minibuild.image import assemble, closure, layers
from minibuild.image.params import (
    ClosureParams,
    ConfigParams,
    DirParam,
    DpkgStatusParams,
    FileParam,
    ImageParams,
    IndexParams,
    LayersParams,
    PlatformParams,
    ProbeParams,
    RuntimeParams,
    TreeParam,
    names,
)
from minibuild.image.runtime.accounts import AccountsSpec
from minibuild.packages import installed, materialize
from minibuild.packages.materialize import SysrootParams
from minibuild.packages.spec import SysrootSpec
from minibuild.rule import Attrs, Dep, LabelAttr, PathOrLabel, RuleContext, rule
from minibuild_rules.common import Mode, Size, check_tag, image_path
from minibuild_rules.providers import DefaultInfo, FileEntry, FilesInfo, ImageInfo, PlatformImage

_ACCOUNT = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\$?\Z")  # a name as useradd takes it


def _check_account(v: str, what: str) -> str:
    if v and not all(_ACCOUNT.match(part) or part.isdigit() for part in v.split(":", 1)):
        raise ValueError(f'{what} `{v}` must be `"NAME"`, `"NAME:GROUP"`, `"UID"` or `"UID:GID"`')
    return v

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class FileSpec(Attrs):
    src: PathOrLabel
    """A file of the package (a path relative to its BUILD.toml), or the label of a `files` or `genrule` target."""
    dest: str | None = None
    """Where it goes in the image (an absolute path; ending in `/`: a directory). A `files` target's entries carry
    their own, so it may be left out for one."""
    mode: Mode | None = None
    """Permission bits, `"0644"`; unset: 0644 for a file, 0755 for a genrule's output, a `files` target's own."""
    owner: str = ""
    """Who owns it in the image: an account of the sysroot (`"www-data"`, `"NAME:GROUP"`) or `"UID:GID"`;
    unset: root."""

    @field_validator("owner")
    @classmethod
    def _owner(cls, v: str) -> str:
        return _check_account(v, "owner")

    @field_validator("dest")
    @classmethod
    def _dest(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if v.endswith("/") and v != "/":
            return image_path(v, "destination").rstrip("/") + "/"
        return image_path(v, "destination")


class DirAttr(Attrs):
    path: str
    """The directory (an absolute path; its parents are made too, owned by root)."""
    owner: str = ""
    """Who owns it: an account of the sysroot (`"www-data"`, `"NAME:GROUP"`) or `"UID:GID"`; unset: root."""
    mode: Mode = 0o755
    """Permission bits, `"0750"`, `"1777"`."""

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        return image_path(v, "directory")

    @field_validator("owner")
    @classmethod
    def _owner(cls, v: str) -> str:
        return _check_account(v, "owner")


class TreeAttr(Attrs):
    src: str
    """A directory of the sysroot, copied to the same path in the image."""
    exclude: list[str] = []
    """Names (`test`, `*.pyc`) or paths relative to `src` (`lib-dynload/_tkinter*`) left out."""
    owner: str = ""
    """Who owns `src` and everything copied below it: an account of the sysroot or `"UID:GID"`; unset: root."""

    @field_validator("src")
    @classmethod
    def _src(cls, v: str) -> str:
        return image_path(v, "tree")

    @field_validator("owner")
    @classmethod
    def _owner(cls, v: str) -> str:
        return _check_account(v, "owner")


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
    """More files: `{ src, dest, mode }`."""
    entrypoint: list[str] = []
    """The image's entrypoint; empty: the only binary, if there is one."""
    cmd: list[str] = []
    """Default arguments (the config's `Cmd`)."""
    env: dict[str, str] = {}
    """Environment variables; `PATH` defaults to the usual one (unless a `base` brings its own)."""
    workdir: str = ""
    """The working directory of the image's processes."""
    user: str = ""
    """The account processes run as: a name of the sysroot's `/etc/passwd` (`"www-data"`, copied with its group),
    `"NAME:GROUP"`, `"UID:GID"` (an entry generated), or `"nonroot"` (uid/gid 65532)."""
    users: list[str] = []
    """More accounts of the sysroot's `/etc/passwd` the program switches to (`["www-data"]`), with their groups."""
    groups: list[str] = []
    """More groups of the sysroot's `/etc/group` (`["adm"]`)."""
    dirs: list[DirAttr] = []
    """Directories created empty with an owner and mode: `{ path = "/var/lib/app", owner = "www-data",
    mode = "0750" }` (a directory the image has anyway takes them too)."""
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
    """Sysroot directories copied with the ELF closure of every ELF file in them: `{ src, exclude }`."""
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

    @field_validator("user")
    @classmethod
    def _user(cls, v: str) -> str:
        return _check_account(v, "user")

    @field_validator("users", "groups")
    @classmethod
    def _accounts(cls, v: list[str]) -> list[str]:
        for name in v:
            if not _ACCOUNT.match(name):
                raise ValueError(f"`{name}` must be an account name of the sysroot (`www-data`), not a number or a "
                                 "path")
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

    @field_validator("gzip_level")
    @classmethod
    def _level(cls, v: int) -> int:
        if not 0 <= v <= 9:
            raise ValueError("gzip_level is 0 (store) to 9 (smallest)")
        return v


def _file_entries(ctx: RuleContext[ImageAttrs], index: int, spec: FileSpec) -> list[FileEntry]:
    attr = f"files[{index}]"
    if not isinstance(spec.src, Dep):
        if spec.dest is None:
            raise ctx.fail(f"`{attr}` needs a `dest`", f"{attr}.dest",
                           hint='e.g. `{ src = "bashrc", dest = "/etc/bash.bashrc" }`')
        mode = spec.mode if spec.mode is not None else 0o644
        dest = spec.dest + spec.src.rsplit("/", 1)[-1] if spec.dest.endswith("/") else spec.dest
        return [FileEntry(dest, mode, ctx.source(spec.src, f"{attr}.src"), f"{ctx.label} {attr}")]
    for provider in ctx.dep(spec.src):
        if isinstance(provider, FilesInfo):
            base = "" if spec.dest is None else spec.dest.rstrip("/") if spec.dest.endswith("/") else None
            if base is None:
                raise ctx.fail(f"`{spec.src}` is a group of files; its destination must be a directory "
                               "ending in `/`", f"{attr}.dest", hint=f'write `dest = "{spec.dest}/"`')
            return [FileEntry(base + e.dest if base else e.dest, spec.mode if spec.mode is not None else e.mode,
                              e.artifact, e.origin) for e in provider.entries]
        if isinstance(provider, DefaultInfo):
            outs = provider.files
            if spec.dest is None:
                raise ctx.fail(f"`{attr}` needs a `dest`", f"{attr}.dest")
            if len(outs) != 1 and not spec.dest.endswith("/"):
                raise ctx.fail(f"`{spec.src}` has {len(outs)} outputs; give a directory `dest` ending in `/`",
                               f"{attr}.dest")
            mode = spec.mode if spec.mode is not None else 0o755
            return [FileEntry(spec.dest + o.name if spec.dest.endswith("/") else spec.dest, mode, o,
                              f"{ctx.label} {attr}") for o in outs]
    raise ctx.fail(f"`{spec.src}` provides no files", f"{attr}.src",
                   hint="`files` takes workspace paths, `files` targets and `genrule` targets")


LABEL_BINARY_DIR = "/usr/local/bin"


def _label_outputs(ctx: RuleContext[ImageAttrs], label: str, attr: str) -> tuple[Artifact, ...]:
    for provider in ctx.dep(label):
        if isinstance(provider, DefaultInfo) and not any(isinstance(p, ImageInfo) for p in ctx.dep(label)):
            return provider.files
    raise ctx.fail(f"`{label}` is not a program: `binaries` takes sysroot paths and genrule targets", attr)


def resolve_closure(run: ActionRun[ClosureParams]) -> None:
    """ElfClosure: closure.json, the binaries' ELF closure with runtime files and what `probe` found."""
    if run.params.package_sysroot is not None:
        document = run.input(run.params.package_sysroot)
        tree = materialize.tree_of(run.cache, document)
        materialize.check_binaries(run.cache, document, tree, [b for b in run.params.paths
                                                               if b not in run.params.overlay])
        run.params = dataclasses.replace(run.params, sysroot_dir=run.portable_path(tree))
    closure.resolve_closure(run)


def prepare_sysroot(run: ActionRun[SysrootParams]) -> None:
    """Sysroot: the packages the lock names for one architecture, fetched, checked and unpacked (sysroot.json)."""
    materialize.prepare(run)


def write_layers(run: ActionRun[LayersParams]) -> None:
    """Layers: the image's files cut into layers, stored; layers.json describes them."""
    spec = run.params.dpkg_status
    if spec is None:
        layers.write_layers(run)
    elif spec.document is not None:
        layers.write_layers(run, dpkg=installed.PackageSysroot.read(run.input(spec.document)))
    else:
        db = installed.DpkgDatabase(run.host_path(spec.sysroot))
        if not db.found:
            raise InputError(f"`{run.action.owner}` sets `dpkg_status`, but sysroot `{spec.sysroot}` has no dpkg "
                             "database (`var/lib/dpkg/status`)",
                             hint="take the programs from a package sysroot (docs/packages.md), or drop "
                                  "`dpkg_status`")
        try:
            layers.write_layers(run, dpkg=db)
        finally:
            run.discover(*db.read)  # a package installed or upgraded on the host writes the image anew


def write_image(run: ActionRun[ImageParams]) -> None:
    """Image: config.json and manifest.json of one platform (and image.tar when it is the only one)."""
    assemble.write_image(run)


def write_index(run: ActionRun[IndexParams]) -> None:
    """ImageIndex: the index of a multi-platform image and the tarball of the host's platform."""
    assemble.write_index(run)


def _image_impl(ctx: RuleContext[ImageAttrs]) -> list[object]:
    a = ctx.attrs
    tag = check_tag(a.tag) if a.tag else check_tag(
        f"{ctx.label.package}/{ctx.label.name}:latest".lstrip("/").lower())
    owned = [(e, spec.owner) for i, spec in enumerate(a.files) for e in _file_entries(ctx, i, spec)]
    files = [e for e, _ in owned]
    file_owners = {e.dest: owner for e, owner in owned if owner}
    file_dests = {e.dest for e in files}
    base = ctx.provider(a.base, ImageInfo) if a.base else None
    # PATH is always set (runtimes differ in the default they inject); a base image brings its own.
    env = {**({} if base else {"PATH": DEFAULT_PATH}), **a.env}
    # A label binary (a genrule's program) is shipped at /usr/local/bin/<name> and resolved like the rest.
    overlay = {f"{LABEL_BINARY_DIR}/{art.name}": art for i, b in enumerate(a.binaries) if isinstance(b, Dep)
               for art in _label_outputs(ctx, b, f"binaries[{i}]")}
    binaries = [b for b in a.binaries if not isinstance(b, Dep)] + sorted(overlay)
    entrypoint = a.entrypoint or (binaries[:1] if len(binaries) == 1 else [])
    if entrypoint and entrypoint[0].startswith("/") and entrypoint[0] not in binaries \
            and entrypoint[0] not in file_dests:
        binaries.append(entrypoint[0])
    if not binaries and not files and not base and not a.trees and not a.dirs and a.tzdata is not True:
        raise ctx.fail("an image needs at least one of `binaries`, `files`, `trees`, `dirs` or `base`", "binaries")

    config_params = ConfigParams(
        entrypoint=tuple(entrypoint), cmd=tuple(a.cmd), env=tuple(f"{k}={v}" for k, v in env.items()),
        workdir=a.workdir, user="65532:65532" if a.user == "nonroot" else a.user, labels=a.labels,
        exposed_ports=tuple(a.exposed_ports), stop_signal=a.stop_signal,
    )
    platforms = a.platforms or ([] if not base or len(base.platforms) == 1 else [p.platform for p in base.platforms])
    multi = len(platforms) > 1
    built = []
    each: list[str | None] = [*platforms] or [None]  # None: the workspace's sysroot, no platform named
    for platform in each:
        prefix = platform.replace("/", "_") + "." if multi and platform else ""
        base_image = base.for_platform(platform) if base else None
        if base and base_image is None:
            raise ctx.fail(f"base `{a.base}` has no image for platform `{platform}`", "base")
        built.append(_platform_image(ctx, a, platform, prefix, binaries, files, env, config_params, tag, base_image,
                                     overlay, write_tarball=not multi, file_owners=file_owners))
    if multi:
        index, tarball = ctx.actions.declare("index.json"), ctx.actions.declare("image.tar")
        ctx.actions.run(
            mnemonic="ImageIndex",
            function=write_index,
            version=1,
            params=IndexParams(images=tuple(PlatformParams(b.platform, b.config, b.manifest, b.layers) for b in built),
                               tag=tag, epoch=ctx.epoch, annotations=a.annotations, index_out=index,
                               tarball_out=tarball),
            inputs=[art for b in built for art in (b.config, b.manifest, b.layers)],
            outputs=[index, tarball],
            description=f"writing the image index `{tag}`",
        )
    else:
        index, tarball = None, ctx.actions.declare("image.tar")
    return [ImageInfo(platforms=tuple(built), index=index, tarball=tarball, tag=tag),
            DefaultInfo(files=(tarball,))]


def _file_params(files: list[FileEntry], owners: dict[str, str] | None = None) -> tuple[FileParam, ...]:
    return tuple(FileParam(e.dest, e.mode, e.artifact, e.origin, (owners or {}).get(e.dest, "")) for e in files)


def _closure_params(ctx: RuleContext[ImageAttrs], platform: str | None, sysroot: str, binaries: list[str],
                    files: list[FileEntry], env: dict[str, str], user: str,
                    overlay: dict[str, Artifact]) -> ClosureParams:
    a = ctx.attrs
    # An /etc/nsswitch.conf the image ships itself replaces the generated one; the modules it names are added.
    nsswitch_conf = next((e.artifact for e in files if e.dest == "/etc/nsswitch.conf"), None)
    # The probe runs in the image as it will be, so it sees the image's own files too.
    probe = ProbeParams(
        commands=tuple(tuple(c) for c in a.probe), timeout=a.probe_timeout, user=user,
        ld_so_cache=a.ld_so_cache, platform_arch=platform.split("/")[1] if platform else None,
        files=_file_params(files),
    ) if a.probe else None
    runtime = RuntimeParams(
        nsswitch=a.nsswitch, nsswitch_conf=nsswitch_conf, ca_certificates=a.ca_certificates,
        tzdata=names(a.tzdata), terminfo=names(a.terminfo), libgcc_s=a.libgcc_s, python_stdlib=a.python_stdlib,
        python_packages=tuple(a.python_packages), gconv=names(a.gconv), locales=names(a.locales),
        trees=tuple(TreeParam(t.src, tuple(t.exclude)) for t in a.trees),
    )
    owners = sorted({o for o in [*(f.owner for f in a.files), *(d.owner for d in a.dirs),
                                 *(t.owner for t in a.trees)] if o})
    accounts = AccountsSpec(user=a.user, users=tuple(a.users), groups=tuple(a.groups), owners=tuple(owners),
                            ships_passwd=any(e.dest == "/etc/passwd" for e in files))
    return ClosureParams(paths=tuple(binaries), sysroot=sysroot, env=env, workdir=a.workdir or "/",
                         platform=platform, overlay=overlay, runtime=runtime, probe=probe, accounts=accounts)


def _platform_image(ctx: RuleContext[ImageAttrs], a: ImageAttrs, platform: str | None, prefix: str,
                    binaries: list[str], files: list[FileEntry], env: dict[str, str], config_params: ConfigParams,
                    tag: str, base: PlatformImage | None, overlay: dict[str, Artifact],
                    write_tarball: bool, file_owners: dict[str, str]) -> PlatformImage:
    """The closure, layers and image actions of one platform of an image."""
    sysroot, package_sysroot = _sysroot(ctx, platform)
    where = f" for `{platform}`" if prefix else ""
    closure_out = ctx.actions.declare(prefix + "closure.json")
    params = _closure_params(ctx, platform, sysroot, binaries, files, env, config_params.user, overlay)
    params = dataclasses.replace(params, package_sysroot=package_sysroot, accounts=dataclasses.replace(
        params.accounts, package_sysroot=package_sysroot is not None))
    ctx.actions.run(
        mnemonic="ElfClosure",
        function=resolve_closure,
        version=1,
        params=params,
        inputs=sorted(set(overlay.values()) | {e.artifact for e in files if e.dest == "/etc/nsswitch.conf"}
                      | ({e.artifact for e in files} if params.probe else set())
                      | ({package_sysroot} if package_sysroot else set())),
        outputs=[closure_out],
        description=f"resolving the ELF closure of `{ctx.label}`{where}",
        discovers_inputs=True,
    )
    layers_out = ctx.actions.declare(prefix + "layers.json")
    ctx.actions.run(
        mnemonic="Layers",
        function=write_layers,
        version=1,
        params=LayersParams(
            closure=closure_out, files=_file_params(files, file_owners), base_layers=base.layers if base else None,
            layering=a.layering, ld_so_cache=a.ld_so_cache, allow_secrets=names(a.allow_secrets),
            keep_setuid=a.keep_setuid, max_size=a.max_size, compression=a.compression, gzip_level=a.gzip_level,
            epoch=ctx.epoch, dpkg_status=DpkgStatusParams(sysroot, package_sysroot) if a.dpkg_status else None,
            dirs=tuple(DirParam(d.path, d.mode, d.owner, f"{ctx.label} dirs[{i}]") for i, d in enumerate(a.dirs)),
            tree_owners=tuple((t.src, t.owner) for t in a.trees if t.owner),
        ),
        inputs=[closure_out, *([base.layers] if base else []), *sorted({e.artifact for e in files}),
                *([package_sysroot] if a.dpkg_status and package_sysroot else [])],
        outputs=[layers_out],
        description=f"writing the layers of `{ctx.label}`{where}",
        discovers_inputs=a.dpkg_status and package_sysroot is None,  # the host's dpkg database
    )
    config, manifest = ctx.actions.declare(prefix + "config.json"), ctx.actions.declare(prefix + "manifest.json")
    tarball = ctx.actions.declare(prefix + "image.tar") if write_tarball else None
    ctx.actions.run(
        mnemonic="Image",
        function=write_image,
        version=1,
        params=ImageParams(
            layers=layers_out, tag=tag, epoch=ctx.epoch, platform=platform, config=config_params,
            annotations=a.annotations, base_config=base.config if base else None, config_out=config,
            manifest_out=manifest, tarball_out=tarball,
        ),
        inputs=[layers_out, *([base.config] if base else [])],
        outputs=[config, manifest, *([tarball] if tarball else [])],
        description=f"writing the image `{tag}`{where}",
    )
    return PlatformImage(platform=platform or "", closure=closure_out, layers=layers_out, config=config,
                         manifest=manifest, sysroot=sysroot, sysroot_document=package_sysroot)


def _sysroot(ctx: RuleContext[ImageAttrs], platform: str | None) -> tuple[str, Artifact | None]:
    """The sysroot of one platform of the image: a host path, or a package sysroot's name and the sysroot.json
    of its architecture (the Sysroot action registered here; images sharing it share its key, so it runs once)."""
    chosen = ctx.attrs.sysroot or (ctx.platforms.get(platform, ctx.sysroot) if platform else ctx.sysroot)
    if chosen not in ctx.package_sysroots:
        if ctx.attrs.sysroot and not chosen.startswith("/"):
            names = ", ".join(f"`{n}`" for n in sorted(ctx.package_sysroots)) or "none"
            raise ctx.fail(f"no package sysroot `{chosen}` in workspace.toml", "sysroot",
                           hint=f"declare it as `[sysroots.{chosen}]` (docs/packages.md), or give an absolute host "
                                f"path; package sysroots: {names}")
        return chosen, None
    spec = SysrootSpec.from_table(chosen, ctx.package_sysroots[chosen])
    arch = spec.arch_for(platform)
    if arch not in spec.request.architectures:
        raise ctx.fail(f"sysroot `{chosen}` has no architecture `{arch}` for platform `{platform}`",
                       "platforms" if platform else "sysroot",
                       hint=f"add `{arch}` to `[sysroots.{chosen}] debian.architectures`, then run `minibuild lock`")
    out = ctx.actions.declare(f"sysroot.{chosen}.{arch}.json")
    ctx.actions.run(
        mnemonic="Sysroot",
        function=prepare_sysroot,
        version=1,
        params=SysrootParams(name=chosen, arch=arch, request=spec.request, url=spec.url),
        inputs=[],
        outputs=[out],
        description=f"fetching and unpacking sysroot `{chosen}` ({arch})",
        discovers_inputs=True,
    )
    return f"{chosen} ({arch})", out


image = rule(
    implementation=_image_impl,
    attrs=ImageAttrs,
    doc="A minimal OCI image: binaries from the sysroot with their ELF closure, plus files.",
)
