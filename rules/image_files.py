"""The image's own files and programs at analysis time: `files` entries and label `binaries` as artifacts with their
destinations in the image."""

from __future__ import annotations

from minibuild.actions import Artifact
from minibuild.image.params import SysrootFileParam
from minibuild.rule import Dep, RuleContext
from minibuild_rules.image_attrs import FileSpec, ImageAttrs
from minibuild_rules.providers import DefaultInfo, FileEntry, FilesInfo, ImageInfo


def file_entries(ctx: RuleContext[ImageAttrs], index: int, spec: FileSpec) -> list[FileEntry]:
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


def label_outputs(ctx: RuleContext[ImageAttrs], label: str, attr: str) -> tuple[Artifact, ...]:
    for provider in ctx.dep(label):
        if isinstance(provider, DefaultInfo) and not any(isinstance(p, ImageInfo) for p in ctx.dep(label)):
            return provider.files
    raise ctx.fail(f"`{label}` is not a program: `binaries` takes sysroot paths and genrule targets", attr)


def sysroot_files(ctx: RuleContext[ImageAttrs]) -> tuple[SysrootFileParam, ...]:
    """The `files` entries with `from = "sysroot"`: taken by the closure action, their mode and owner applied by the
    Layers action."""
    out = []
    for i, spec in enumerate(ctx.attrs.files):
        if spec.from_ == "sysroot":
            dest = spec.dest or spec.src
            dest = dest + spec.src.rsplit("/", 1)[-1] if dest.endswith("/") else dest
            out.append(SysrootFileParam(spec.src, dest, spec.mode, spec.owner, f"{ctx.label} files[{i}]"))
    return tuple(out)
