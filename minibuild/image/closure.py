"""The closure action: every file an image's binaries need, as the loader and the programs will ask for them.

closure.json = {"roots", "entries", "objects", "runtime", "warnings", "architecture", "variant", "probe"?,
"already_loaded"?}: the ELF closure of the binaries (the copy plan and the objects the loader maps, each with its
layer role), the runtime files (docs/runtime.md), what `probe` commands added (docs/probe.md), and the names
dlopened libraries got from objects loaded before them (docs/loader.md#g19).
"""

from __future__ import annotations

import os
import shlex
import stat
import tempfile
from typing import Any

from minibuild import elf
from minibuild.elf.sysroot import Sysroot, parent_dirs
from minibuild.entry import TreeEntry
from minibuild.errors import ElfError, InputError
from minibuild.executor import ActionRun
from minibuild.image import loaded_before, probe, runtime
from minibuild.image.documents import write_json
from minibuild.image.params import ClosureParams, RuntimeParams
from minibuild.image.platform import host_architecture
from minibuild.image.runtime.accounts import plan_accounts
from minibuild.image.runtime.copy import copy_path
from minibuild.image.runtime.model import PackageFiles, RuntimePlan
from minibuild.image.runtime.sysroot_files import moved_elf_files
from minibuild.image.tree import ImageTree, build_tree

# The loader and libc sit in the lowest layer: every glibc (or musl) image of a catalog has them, so
# that layer is byte-identical across the catalog and stored and pulled once.
_BASE_SONAMES = ("libc.so.6", "libc.musl-")
MAX_PROBE_ROUNDS = 8
PROBE_REASON = "probe: "
# Paths never taken from the sysroot for the probe: the kernel's and the runtime's, scratch and home
# directories (with sysroot `/` they are the build machine's own), and the loader's cache of the sysroot.
_PROBE_SKIP_DIRS = ("/proc", "/sys", "/dev", "/tmp", "/var/tmp", "/run", "/var/run", "/root", "/home", "/mnt",
                    "/media", "/var/log")
# /etc/hosts, /etc/hostname and /etc/resolv.conf are the container runtime's to provide.
_PROBE_SKIP_FILES = ("/", "/etc/ld.so.cache", "/etc/ld.so.preload", "/etc/hosts", "/etc/hostname",
                     "/etc/resolv.conf", "/etc/mtab")


def _runtime_options(run: ActionRun[ClosureParams], rt: RuntimeParams) -> runtime.RuntimeOptions:
    text = None
    if rt.nsswitch_conf is not None:
        with open(run.input(rt.nsswitch_conf), encoding="utf-8", errors="replace") as f:
            text = f.read()
    return runtime.RuntimeOptions(
        nsswitch=rt.nsswitch, nsswitch_conf=text, ca_certificates=rt.ca_certificates, tzdata=rt.tzdata,
        terminfo=rt.terminfo, libgcc_s=rt.libgcc_s, gconv=rt.gconv, locales=rt.locales,
        python_stdlib=rt.python_stdlib, python_packages=tuple(rt.python_packages),
        trees=tuple(runtime.TreeSpec(t.src, tuple(t.exclude), "tree", tuple(t.include)) for t in rt.trees),
        env=tuple(sorted(run.params.env.items())),
        packages=tuple(PackageFiles(pkg.name, (run.params.package_paths or {})[pkg.name], pkg.docs, pkg.exclude)
                       for pkg in rt.packages),
        sysroot_files=tuple((f.src, f.dest, f.origin) for f in rt.sysroot_files), sysroot_name=run.params.sysroot,
        shell=rt.shell,
    )


def resolve_closure(run: ActionRun[ClosureParams]) -> None:
    """Write closure.json: the static closure, runtime files, then probe rounds until nothing new appears."""
    p = run.params
    overlay = {dest: run.input(art) for dest, art in p.overlay.items()}
    overlay.update(_moved_elf_files(run))
    options = elf.ResolveOptions(env=tuple(sorted(p.env.items())), workdir=p.workdir, overlay=tuple(overlay.items()))
    runtime_options = _runtime_options(run, p.runtime)
    found = RuntimePlan()  # what the probe found, with its ELF roots
    reports: dict[str, Any] = {}
    declared = loaded_before.declared_orders(p.loaded_before, str(run.action.owner))
    evidence: dict[str, tuple[elf.LoadOrder, ...]] | None = None if p.probe is not None else {}
    for round_ in range(1, MAX_PROBE_ROUNDS + 1):
        doc = _closure_document(run, loaded_before.with_orders(options, declared, evidence), runtime_options,
                                overlay, found)
        if p.probe is None:
            break
        added, results = _probe_round(run, doc, found, overlay)
        evidence = {**(evidence or {}), **loaded_before.probe_orders(results)}
        if not all(r.overlay for r in results) and round_ == 1:
            run.warn("overlayfs is not available here: `probe` ran its commands in the image alone, so it finds "
                     "only what they ask for by name")
        for r in results:
            reports[shlex.join(r.command)] = {"command": list(r.command), "exit_code": r.exit_code,
                                              "rounds": round_, "output": r.output}
        if not added:
            break
    else:
        run.warn(f"`probe` still found new files after {MAX_PROBE_ROUNDS} rounds; stopped there")
    if loaded_before.assumed(doc):  # G19 matched before the probe ran: now its traces decide
        doc = _closure_document(run, loaded_before.with_orders(options, declared, evidence), runtime_options,
                                overlay, found)
    if p.probe is not None:
        doc["probe"] = _probe_reports(run, doc, reports)
    [out] = run.outputs.values()
    write_json(out, doc)
    for w in doc["warnings"]:
        run.warn(w)


def _probe_reports(run: ActionRun[ClosureParams], doc: dict[str, Any], reports: dict[str, Any]) -> list[Any]:
    for command, r in reports.items():
        r["added"] = sorted(e["path"] for e in (*doc["entries"], *doc["runtime"])
                            if e["reason"] == PROBE_REASON + command)
        if r["exit_code"] != 0:
            how = "was stopped after its timeout" if r["exit_code"] is None else f"exited with {r['exit_code']}"
            run.warn(f"probe `{command}` {how} in the finished image; its last output:\n{r['output']}")
    return list(reports.values())


def _resolve_with_runtime(p: ClosureParams, sysroot: str, options: elf.ResolveOptions,
                          runtime_options: runtime.RuntimeOptions, fs: Sysroot,
                          found: RuntimePlan) -> tuple[elf.Closure, RuntimePlan, dict[str, tuple[str, str]]]:
    """The closure of the binaries and of the ELF roots runtime files bring (NSS modules, libgcc_s, extension
    modules), whose closures may bring more runtime files: again until nothing new comes (two rounds in
    practice). Returns the closure, the runtime plan and every extra root with (reason, layer role)."""
    roots = list(p.paths) + sorted(r for r in found.elf_roots if r not in p.paths)
    extra: dict[str, tuple[str, str]] = {path: (reason, "libs") for path, (reason, _) in found.elf_roots.items()}
    for _ in range(8):
        closure = elf.resolve(roots, sysroot, options)
        plan = runtime.plan(closure, fs, runtime_options)
        new = sorted(r for r in plan.elf_roots if r not in extra and r not in roots)
        for r in plan.elf_roots:
            extra.setdefault(r, plan.elf_roots[r])
        if not new:
            break
        roots += new
    return closure, plan, extra


def _check_platform(p: ClosureParams, closure: elf.Closure) -> None:
    if not p.platform or not closure.architecture:
        return
    if closure.architecture != p.platform.split("/")[1]:
        odd = next((o.path for o in closure.objects if o.loader is None), p.paths[0])
        raise ElfError(f"`{odd}` in sysroot `{p.sysroot}` is an ELF file for `{closure.architecture}`, "
                       f"but the image's platform is `{p.platform}`",
                       hint="give each platform its own sysroot in workspace.toml: "
                            f'`[platforms] "{p.platform}" = {{ sysroot = "..." }}`')


def _roles(closure: elf.Closure, extra: dict[str, tuple[str, str]]) -> dict[str, str]:
    """The layer group of each loaded object: base (loader, libc), app (the binaries), libs, or an extra's."""
    roots = set(closure.roots)
    roles: dict[str, str] = {}
    for obj in closure.objects:
        if obj.is_interpreter or any(n.startswith(_BASE_SONAMES) for n in (*obj.names, obj.realpath.rsplit("/")[-1])):
            roles[obj.path] = "base"
        elif obj.path in extra and obj.loader is None:
            roles[obj.path] = extra[obj.path][1]
        elif obj.path in roots and obj.loader is None:
            roles[obj.path] = "app"
        else:
            roles[obj.path] = "libs"
    return roles


def _closure_document(run: ActionRun[ClosureParams], options: elf.ResolveOptions,
                      runtime_options: runtime.RuntimeOptions, overlay: dict[str, str],
                      found: RuntimePlan) -> dict[str, Any]:
    """The static closure of the binaries and of what `found` (the probe) added, with runtime files."""
    p = run.params
    sysroot = sysroot_dir(run)
    fs = Sysroot(sysroot, overlay)
    closure, plan, extra = _resolve_with_runtime(p, sysroot, options, runtime_options, fs, found)
    accounts = plan_accounts(fs, p.accounts, p.sysroot)
    root = sysroot.rstrip("/")
    # Overlay files are declared inputs (their digests are in the key), not discovered ones.
    run.discover(*(root + path for path in closure.probed if path not in overlay))
    run.discover(*(root + path for path in fs.probed if path not in overlay))
    _check_platform(p, closure)
    loaded_before.check_declared(p.loaded_before, str(run.action.owner), closure, fs)
    roles = _roles(closure, extra)
    # An extra root may be asked for through a symlinked directory (/lib/...); the copy plan has its real path.
    extra_reason = {o.realpath: extra[o.path][0] for o in closure.objects if o.path in extra and o.loader is None}
    entries = []
    for e in closure.entries:
        digest = run.digest(e.source) if e.kind == "file" and e.source else None
        # Stored outputs are read-only in the cache; a program shipped from one is executable in the image.
        mode = 0o755 if e.path in p.overlay else e.mode  # a sysroot file moved by `files` keeps its mode
        reason = extra_reason.get(e.path, e.reason) if e.reason == "binary" else e.reason
        entries.append({"path": e.path, "kind": e.kind, "mode": mode, "target": e.target,
                        "source": _portable(run, e.source), "digest": digest, "size": e.size, "reason": reason})
    planned = {e["path"] for e in entries}
    runtime_files = []
    more = [f for f in found.files.values() if f.path not in plan.files]
    for f in [*plan.files.values(), *more]:
        if f.path in planned:
            continue
        digest = run.digest(f.source) if f.kind == "file" and f.source else None
        runtime_files.append({"path": f.path, "kind": f.kind, "mode": f.mode, "target": f.target,
                              "source": _portable(run, f.source), "digest": digest, "size": f.size,
                              "reason": f.reason,
                              **({"data": f.data.decode()} if f.data is not None else {})})
    objects = [{"path": o.path, "realpath": o.realpath, "names": list(o.names), "loader": o.loader,
                "needed": [list(n) for n in o.needed], "role": roles[o.path], "soname": o.soname,
                "interpreter": o.is_interpreter} for o in closure.objects]
    return {
        "roots": list(closure.roots), "entries": entries, "objects": objects, "runtime": runtime_files,
        # Messages name the sysroot as the workspace does, not by this clone's path (they are part of the output).
        "warnings": [w.replace(f"sysroot `{sysroot}`", f"sysroot `{p.sysroot}`")
                     for w in (*closure.warnings, *plan.warnings, *found.warnings)],
        "architecture": closure.architecture, "variant": closure.variant,
        # Objects importing popen, system or exec*p: the Layers action warns when the image has no /bin/sh.
        **({"shell_importers": plan.shell_importers} if plan.shell_importers else {}),
        **({"already_loaded": loaded_before.matches_document(closure)} if closure.already_loaded else {}),
        "accounts": {"passwd": accounts.passwd, "group": accounts.group, "user": accounts.user,
                     "owners": {k: list(v) for k, v in accounts.owners.items()}},
    }


def _moved_elf_files(run: ActionRun[ClosureParams]) -> dict[str, str]:
    """Sysroot ELF files that `files` copies to another path, resolved at that path (runtime/sysroot_files.py)."""
    files = tuple((f.src, f.dest, f.origin) for f in run.params.runtime.sysroot_files)
    if all(src == dest for src, dest, _ in files):
        return {}
    sysroot = sysroot_dir(run)
    fs = Sysroot(sysroot)
    moved = moved_elf_files(fs, files)
    run.discover(*(sysroot.rstrip("/") + path for path in fs.probed))  # not an overlay's declared input
    return moved


def sysroot_dir(run: ActionRun[ClosureParams]) -> str:
    """The host directory of the image's sysroot: the unpacked tree of a package sysroot (the rule sets
    `sysroot_dir` when the action runs), else the sysroot as the workspace names it."""
    p = run.params
    return run.host_path(p.sysroot_dir or p.sysroot)


def _portable(run: ActionRun[ClosureParams], source: str | None) -> str | None:
    """A source as closure.json records it: a file of a sysroot or a stored output inside the workspace by its
    path relative to the workspace root, so the document (and every key after it) is the same in any clone."""
    return run.portable_path(source) if source else source


def _run_probes(run: ActionRun[ClosureParams], tree: ImageTree) -> list[probe.ProbeResult]:
    """Run every probe command in the image `tree` makes, laid over the sysroot; their results."""
    p = run.params
    assert p.probe is not None
    [out] = run.outputs.values()
    with tempfile.TemporaryDirectory(dir=os.path.dirname(out), prefix="probe-", ignore_cleanup_errors=True) as tmp:
        image = os.path.join(tmp, "image")
        os.mkdir(image)
        probe.materialize(tree, image)
        results = []
        for i, command in enumerate(p.probe.commands):
            log = os.path.join(tmp, str(i), "trace")
            os.mkdir(os.path.dirname(log))
            results.append(probe.run_probe(list(command), image, sysroot_dir(run), env=dict(p.env),
                                           workdir=p.workdir, user=p.probe.user, timeout=p.probe.timeout, log=log))
    return results


def _probe_round(run: ActionRun[ClosureParams], doc: dict[str, Any], found: RuntimePlan,
                 overlay: dict[str, str]) -> tuple[int, list[probe.ProbeResult]]:
    """Run every probe command in the image as `doc` makes it; add to `found` what they looked for that the
    sysroot has and the image has not. Returns how many entries were added, and the results."""
    p = run.params
    spec = p.probe
    assert spec is not None
    if spec.platform_arch and spec.platform_arch != host_architecture():
        raise InputError(f"`probe` runs the image's programs, which are for `{spec.platform_arch}`; this "
                         f"machine is `{host_architecture()}`", hint="probe the image of the host's platform only")
    files = [{"dest": f.dest, "mode": f.mode, "input": f.input.path, "origin": f.origin,
              "digest": run.digest(run.input(f.input))} for f in spec.files]
    tree, _ = build_tree(doc, files, run.inputs, spec.ld_so_cache, root=run.root)
    results = _run_probes(run, tree)
    # The image has a path when the tree has it, or has something below it (directories are implied).
    present = set(tree.entries) | {d for path in tree.entries for d in parent_dirs(path)}
    sysroot = sysroot_dir(run)
    fs = Sysroot(sysroot, overlay)
    before = len(found.files) + len(found.elf_roots)
    for r in results:
        reason = PROBE_REASON + shlex.join(r.command)
        for path in r.paths:
            if path in _PROBE_SKIP_FILES or any(path == d or path.startswith(d + "/") for d in _PROBE_SKIP_DIRS):
                continue
            if tree.canonical(path) in present or path in overlay:
                continue
            look = fs.lookup(path)
            real = copy_path(fs, path, reason, found)
            # copy_path adds only the links to a directory: the probe adds the directory itself, empty.
            if real is not None and look.st is not None and stat.S_ISDIR(look.st.st_mode) \
                    and tree.canonical(real) not in present:
                found.add(TreeEntry(real, "dir", stat.S_IMODE(look.st.st_mode), reason))
    root = sysroot.rstrip("/")
    run.discover(*(root + path for path in fs.probed if path not in overlay))
    return len(found.files) + len(found.elf_roots) - before, results
