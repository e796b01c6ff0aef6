"""G19 (docs/loader.md#g19): a library root's DT_NEEDED name satisfied by an object loaded before it.

A library a program dlopens is resolved as a root of its own (docs/loader.md §2), so its link map starts
empty. In the program, glibc's `_dl_map_object` first compares the name with every object already loaded
in the namespace (G3), whatever loaded it and whether with RTLD_GLOBAL or not. So a name that is not on the
library's own search path is accepted when an object of the image answers to it (its DT_SONAME, or a name
it was requested or opened by) and was loaded before the root in the same process: seen by a probe (the
order of the opens in its trace) or declared. Anything else stays an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from minibuild.elf.linkmap import MappedObject
from minibuild.elf.model import LoadedMatch, LoadOrder
from minibuild.elf.sysroot import Sysroot

if TYPE_CHECKING:
    from minibuild.elf.process import Process

# Where an object was loaded before a root: (index of the load order, position in it), and the order's source.
_Seen = tuple[tuple[int, int], str | None]
_ASSUMED: _Seen = ((1 << 30, 0), None)


@dataclass(frozen=True)
class Miss:
    """A name a library root's link map could not find on its own search path, and the error it would be."""

    name: str
    req: MappedObject
    kind: str
    message: str
    causes: tuple[str, ...]


class AlreadyLoaded:
    """G19 for the roots of one `resolve()` call: the load orders, and the roots whose misses wait for them."""

    def __init__(self, fs: Sysroot, orders: tuple[LoadOrder, ...], assume: bool) -> None:
        self.fs = fs
        self.orders = orders
        self.assume = assume
        self.pending: list[Process] = []
        self.matches: list[LoadedMatch] = []
        self._real: dict[str, str] = {}
        self._before: dict[str, dict[str, _Seen]] = {}

    def applies(self, root: MappedObject) -> bool:
        """Whether a miss of this library root's link map may still be satisfied by an earlier object."""
        return self.assume or bool(self.before(root))

    def before(self, root: MappedObject) -> dict[str, _Seen]:
        """The real path of every object some process loaded before `root`, with where that was seen first."""
        key = root.realpath
        if key in self._before:
            return self._before[key]
        out: dict[str, _Seen] = {}
        for i, order in enumerate(self.orders):
            seen: list[str] = []
            for path in order.paths:
                real = self.realpath(path)
                if real == key:
                    for pos, earlier in enumerate(seen):
                        out.setdefault(earlier, ((i, pos), order.source))
                    break
                seen.append(real)
        self._before[key] = out
        return out

    def realpath(self, path: str) -> str:
        if path not in self._real:
            self._real[path] = self.fs.lookup(path).realpath or path
        return self._real[path]

    def settle(self, linkmaps: list[list[MappedObject]]) -> None:
        """Satisfy the pending roots' misses from the other link maps, or report them as the loader would."""
        for proc in self.pending:
            before = self.before(proc.main)
            for miss in proc.misses:
                found = _provider(miss.name, proc.objs, before, linkmaps, self.assume)
                if found is None:
                    sources = sorted({s for _, s in before.values() if s})
                    seen = f" (load orders: {', '.join(sources)})" if sources else ""
                    proc.report_missing(miss, (f"no object of the image answering to `{miss.name}` was loaded "
                                               f"before `{proc.main.path}` in the same process{seen} (G19)",))
                    continue
                provider, by, source = found
                _link(miss, provider)
                proc.by_name.setdefault(miss.name, provider)
                self.matches.append(LoadedMatch(miss.req.path, miss.name, provider.path, proc.main.path, by, source))
            proc.complete()


def _provider(name: str, own: list[MappedObject], before: dict[str, _Seen], linkmaps: list[list[MappedObject]],
              assume: bool) -> tuple[MappedObject, str, str | None] | None:
    """The object loaded first among those of other link maps that answer to `name` (G3's test)."""
    best: tuple[tuple[int, int], MappedObject, str, str | None] | None = None
    for objs in linkmaps:
        if objs is own or not objs:
            continue
        # Loading an object loads its link map: what it needs counts as loaded when it does.
        whole = before.get(objs[0].realpath)
        for o in objs:
            if o.variant_of is not None:
                continue
            by = "soname" if o.info.soname == name else "name" if name in o.names or name == o.path else None
            if by is None:
                continue
            where = before.get(o.realpath) or whole or (_ASSUMED if assume else None)
            if where is not None and (best is None or where[0] < best[0]):
                best = (where[0], o, by, where[1])
    return None if best is None else best[1:]


def _link(miss: Miss, provider: MappedObject) -> None:
    """Point the requester's entry for the name at the provider (a filtee entry is only listed when found)."""
    for i, (name, target) in enumerate(miss.req.needed):
        if name == miss.name and target is None:
            miss.req.needed[i] = (name, provider)
            return
    miss.req.needed.append((miss.name, provider))
