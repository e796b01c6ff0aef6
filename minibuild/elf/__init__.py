"""The static ELF closure resolver: which files the kernel and the dynamic loader would open.

See docs/loader.md (the loader rules G1-G19, musl M1-M8, copy plan L1-L8, scripts S1-S6). Nothing here
executes the programs it looks at.
"""

from minibuild.elf.model import Closure, LoadedMatch, LoadedObject, LoadOrder, ResolveOptions
from minibuild.elf.report import closure_json, closure_tree, why
from minibuild.elf.resolver import Session, resolve
from minibuild.entry import TreeEntry

__all__ = [
    "Closure",
    "LoadedMatch",
    "LoadedObject",
    "LoadOrder",
    "TreeEntry",
    "ResolveOptions",
    "Session",
    "closure_json",
    "closure_tree",
    "resolve",
    "why",
]
