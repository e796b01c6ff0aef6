"""`image`: a minimal OCI image of programs from a sysroot, with their ELF closure and extra files.

    [[image]]
    name = "bash"
    binaries = ["/bin/bash"]
    files = [{ src = "bashrc", dest = "/etc/bash.bashrc", mode = "0644" }]
"""

from __future__ import annotations

import dataclasses

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
    PackageParam,
    PlatformParams,
    ProbeParams,
    RuntimeParams,
    TreeParam,
    names,
)
from minibuild.image.runtime.accounts import AccountsSpec, NewGroup, NewUser
from minibuild.packages import installed, materialize
from minibuild.packages.materialize import SysrootParams
from minibuild.packages.spec import SysrootSpec
from minibuild.rule import Dep, RuleContext, rule
from minibuild_rules.common import check_tag
from minibuild_rules.image_attrs import ImageAttrs
from minibuild_rules.image_files import LABEL_BINARY_DIR, file_entries, label_outputs, sysroot_files
from minibuild_rules.providers import DefaultInfo, FileEntry, ImageInfo, PlatformImage

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def resolve_closure(run: ActionRun[ClosureParams]) -> None:
    """ElfClosure: closure.json, the binaries' ELF closure with runtime files and what `probe` found."""
    if run.params.package_sysroot is not None:
        document = run.input(run.params.package_sysroot)
        tree = materialize.tree_of(run.cache, document)
        materialize.check_binaries(run.cache, document, tree, [b for b in run.params.paths
                                                               if b not in run.params.overlay])
        run.params = dataclasses.replace(run.params, sysroot_dir=run.portable_path(tree))
    names = [pkg.name for pkg in run.params.runtime.packages]
    if names and run.params.package_sysroot is not None:
        paths = installed.sysroot_package_paths(run.input(run.params.package_sysroot), names)
        run.params = dataclasses.replace(run.params, package_paths=paths)
    elif names:
        paths, read = installed.dpkg_package_paths(run.host_path(run.params.sysroot), names, run.params.sysroot)
        run.discover(*read)  # a package installed, upgraded or removed on the host builds the image anew
        run.params = dataclasses.replace(run.params, package_paths=paths)
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
    owned = [(e, spec.owner) for i, spec in enumerate(a.files) if spec.from_ == "package"
             for e in file_entries(ctx, i, spec)]
    files = [e for e, _ in owned]
    file_owners = {e.dest: owner for e, owner in owned if owner}
    file_dests = {e.dest for e in files} | {f.dest for f in sysroot_files(ctx)}  # an entrypoint among them
    base = ctx.provider(a.base, ImageInfo) if a.base else None
    # PATH is always set (runtimes differ in the default they inject); a base image brings its own.
    env = {**({} if base else {"PATH": DEFAULT_PATH}), **a.env}
    # A label binary (a genrule's program) is shipped at /usr/local/bin/<name> and resolved like the rest.
    overlay = {f"{LABEL_BINARY_DIR}/{art.name}": art for i, b in enumerate(a.binaries) if isinstance(b, Dep)
               for art in label_outputs(ctx, b, f"binaries[{i}]")}
    binaries = [b for b in a.binaries if not isinstance(b, Dep)] + sorted(overlay)
    entrypoint = a.entrypoint or (binaries[:1] if len(binaries) == 1 else [])
    if entrypoint and entrypoint[0].startswith("/") and entrypoint[0] not in binaries \
            and entrypoint[0] not in file_dests:
        binaries.append(entrypoint[0])
    if not binaries and not a.files and not base and not a.trees and not a.dirs and not a.volumes and not a.links \
            and not a.packages and a.tzdata is not True:
        raise ctx.fail("an image needs at least one of `binaries`, `files`, `packages`, `trees`, `dirs` or `base`",
                       "binaries")

    config_params = ConfigParams(
        entrypoint=tuple(entrypoint), cmd=tuple(a.cmd), env=tuple(f"{k}={v}" for k, v in env.items()),
        workdir=a.workdir, user="65532:65532" if a.user == "nonroot" else a.user, labels=a.labels,
        exposed_ports=tuple(a.exposed_ports), stop_signal=a.stop_signal, volumes=tuple(a.volumes),
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
        trees=tuple(TreeParam(t.src, tuple(t.exclude), tuple(t.include)) for t in a.trees),
        packages=tuple(PackageParam(p.name, p.docs, tuple(p.exclude)) for p in a.packages),
        sysroot_files=sysroot_files(ctx), shell=a.shell,
    )
    # Each owner with the first entry naming it, for messages (`dirs[0]` (app/BUILD.toml:4)).
    where: dict[str, str] = {}
    named = [("files", [f.owner for f in a.files]), ("dirs", [d.owner for d in a.dirs]),
             ("trees", [t.owner for t in a.trees])]
    for attr, entries in named:
        for i, owner in enumerate(entries):
            at = ctx.target_origin(f"{attr}[{i}]")
            where.setdefault(owner, f"`{attr}[{i}]` ({at.file}:{at.line})" if at.file else f"`{attr}[{i}]`")
    owners = sorted(o for o in where if o)
    accounts = AccountsSpec(
        user=a.user, users=tuple(u for u in a.users if isinstance(u, str)),
        groups=tuple(g for g in a.groups if isinstance(g, str)), owners=tuple(owners),
        owner_origins=tuple((o, where[o]) for o in owners),
        ships_passwd=any(e.dest == "/etc/passwd" for e in files),
        new_users=tuple(NewUser(u.name, u.uid, u.uid if u.gid is None else u.gid, u.home, u.shell, u.gecos,
                                f"users[{i}]") for i, u in enumerate(a.users) if not isinstance(u, str)),
        new_groups=tuple(NewGroup(g.name, g.gid, f"groups[{i}]") for i, g in enumerate(a.groups)
                         if not isinstance(g, str)))
    return ClosureParams(paths=tuple(binaries), sysroot=sysroot, env=env, workdir=a.workdir or "/",
                         platform=platform, overlay=overlay, runtime=runtime, probe=probe, accounts=accounts,
                         loaded_before=tuple((lib, tuple(objs)) for lib, objs in sorted(a.loaded_before.items())))


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
            dirs=_dir_params(ctx),
            links=tuple((x.path, x.target, f"{ctx.label} links[{i}]") for i, x in enumerate(a.links)),
            tree_owners=tuple((t.src, t.owner) for t in a.trees if t.owner),
            sysroot_files=sysroot_files(ctx),
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


def _dir_params(ctx: RuleContext[ImageAttrs]) -> tuple[DirParam, ...]:
    """`dirs`, then each of `volumes` no `dirs` entry declares; a volume or an entry without owner and mode is made
    root's 0755 (/tmp 1777) only where neither the image nor its base has the directory."""
    a = ctx.attrs
    declared = {d.path.rstrip("/") for d in a.dirs}
    return (*(DirParam(d.path, _dir_mode(d.path, d.mode), d.owner, f"{ctx.label} dirs[{i}]",
                       if_absent=not d.owner and d.mode is None) for i, d in enumerate(a.dirs)),
            *(DirParam(v, 0o755, "", f"{ctx.label} volumes[{i}]", if_absent=True)
              for i, v in enumerate(a.volumes) if v not in declared))


def _dir_mode(path: str, mode: int | None) -> int:
    """A `dirs` entry's mode: as given, else 0755; /tmp stays 1777, as every image has it (only an owner declared)."""
    if mode is not None:
        return mode
    return 0o1777 if path.rstrip("/") == "/tmp" else 0o755


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
