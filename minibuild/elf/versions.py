"""Symbol versions (docs/loader.md, rule G17): every version an object needs is defined by its provider."""

from __future__ import annotations

from minibuild.elf.linkmap import MappedObject
from minibuild.errors import ElfError


def check_versions(objs: list[MappedObject], by_name: dict[str, MappedObject]) -> None:
    """Raise for the first version an object requires that its provider does not define (glibc only)."""
    for o in objs:
        if not o.info.verneed:
            continue
        mapped = {n: t for n, t in reversed(o.needed) if t is not None}
        for file, versions in o.info.verneed:
            provider = mapped.get(file)
            if provider is None:
                provider = by_name.get(file)
            if provider is None or not provider.info.verdef:
                continue  # glibc: "no version information available" is not fatal
            for version, weak in versions:
                if not weak and version not in provider.info.verdef:
                    raise ElfError(
                        f"`{o.path}` requires version `{version}` of `{file}`, which `{provider.path}` "
                        f"(`{provider.realpath}`) does not define",
                        hint="the library comes from an older release than the program; take both from one "
                             "sysroot",
                    )
