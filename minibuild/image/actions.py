"""The actions behind the `image` rule: resolve the ELF closure, write the layers, write the image.

Each is a plain function over an `ActionRun`; their JSON outputs are the contract between them:
  closure.json  {"entries": [...], "objects": [...], "warnings": [...], "architecture", "variant"}
  layers.json   {"layers": [{"digest", "size", "media_type", "diff_id", "uncompressed_size", "created_by",
                 "files": [{"path", "kind", "size", "reason"}]}], "architecture", "variant"}
"""

from __future__ import annotations

import dataclasses
import json
import os
import posixpath
import re
import shlex
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from minibuild.executor import ActionRun
from minibuild.image.tree import ImageTree, TreeEntry

# The loader and libc sit in the lowest layer: every glibc (or musl) image of a catalog has them, so
# that layer is byte-identical across the catalog and stored and pulled once.
_BASE_SONAMES = ("libc.so.6", "libc.musl-")
_GROUPS = ("base", "libs", "runtime", "app")
BIG_LIBRARY = 256 * 1024  # bytes; smaller libraries share one layer per image
_HISTORY = {"base": "minibuild: dynamic loader and libc", "libs": "minibuild: shared libraries",
            "runtime": "minibuild: runtime files (stdlib, certificates, zoneinfo, terminfo)",
            "app": "minibuild: binaries and files"}


def parse_platform(text: str | None) -> tuple[str, str | None]:
    """"linux/arm64/v8" -> ("arm64", "v8")."""
    parts = (text or "").split("/")
    return (parts[1] if len(parts) > 1 else ""), (parts[2] if len(parts) > 2 else None)


def _write_json(path: str, value: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, sort_keys=True, separators=(",", ":"))


def _only_output(run: ActionRun) -> str:
    [path] = run.outputs.values()
    return path


def _read_json(path: str) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def resolve_closure(run: ActionRun) -> None:
    from minibuild import elf
    from minibuild.image import runtime
    from minibuild.image.runtime.model import RuntimePlan

    p = run.params
    overlay = {dest: run.inputs[art] for dest, art in p.get("overlay", {}).items()}
    options = elf.ResolveOptions(env=tuple(sorted(p["env"].items())), workdir=p["workdir"],
                                 overlay=tuple(overlay.items()))
    rt = p.get("runtime")
    runtime_options = None
    if rt is not None:
        conf = rt.get("nsswitch_conf")
        text = None
        if conf:
            with open(run.inputs[conf], encoding="utf-8", errors="replace") as f:
                text = f.read()
        runtime_options = runtime.RuntimeOptions.from_params({**rt, "nsswitch_conf": text, "env": p["env"]})
    probe = p.get("probe") or {}
    found = RuntimePlan()  # what the probe found, with its ELF roots
    reports: dict[str, Any] = {}
    for round_ in range(1, MAX_PROBE_ROUNDS + 1):
        doc = _closure_document(run, options, runtime_options, overlay, found)
        if not probe:
            break
        added, results = _probe_round(run, doc, found, overlay)
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
    if probe:
        for command, r in reports.items():
            r["added"] = sorted(e["path"] for e in (*doc["entries"], *doc["runtime"])
                                if e["reason"] == PROBE_REASON + command)
            if r["exit_code"] != 0:
                how = "was stopped after its timeout" if r["exit_code"] is None else f"exited with {r['exit_code']}"
                run.warn(f"probe `{command}` {how} in the finished image; its last output:\n{r['output']}")
        doc["probe"] = list(reports.values())
    _write_json(_only_output(run), doc)
    for w in doc["warnings"]:
        run.warn(w)


def _closure_document(run: ActionRun, options: Any, runtime_options: Any, overlay: dict[str, str],
                      found: Any) -> dict[str, Any]:
    """The static closure of the binaries and of what `found` (the probe) added, with runtime files."""
    from minibuild import elf
    from minibuild.elf.sysroot import Sysroot
    from minibuild.image import runtime

    p = run.params
    sysroot = p["sysroot"]
    # Runtime files may bring more ELF roots (NSS modules, libgcc_s, extension modules), whose closures may
    # trigger more runtime files: resolve again until nothing new comes (two rounds in practice).
    roots = list(p["paths"]) + sorted(r for r in found.elf_roots if r not in p["paths"])
    extra: dict[str, tuple[str, str]] = {path: (reason, "libs") for path, (reason, _) in found.elf_roots.items()}
    fs = Sysroot(sysroot, overlay)
    plan = None
    for _ in range(8):
        closure = elf.resolve(roots, sysroot, options)
        if runtime_options is None:
            break
        plan = runtime.plan(closure, fs, runtime_options)
        new = sorted(r for r in plan.elf_roots if r not in extra and r not in roots)
        for r in plan.elf_roots:
            extra.setdefault(r, plan.elf_roots[r])
        if not new:
            break
        roots += new
    root = sysroot.rstrip("/")
    # Overlay files are declared inputs (their digests are in the key), not discovered ones.
    run.discover(*(root + path for path in closure.probed if path not in overlay))
    run.discover(*(root + path for path in fs.probed if path not in overlay))
    if p.get("platform") and closure.architecture:
        want = p["platform"].split("/")[1]
        if closure.architecture != want:
            from minibuild.errors import ElfError

            odd = next((o.path for o in closure.objects if o.loader is None), p["paths"][0])
            raise ElfError(f"`{odd}` in sysroot `{sysroot}` is an ELF file for `{closure.architecture}`, "
                           f"but the image's platform is `{p['platform']}`",
                           hint="give each platform its own sysroot in workspace.toml: "
                                f'`[platforms] "{p["platform"]}" = {{ sysroot = "..." }}`')
    roots_set = set(closure.roots)
    roles: dict[str, str] = {}
    for obj in closure.objects:
        if obj.is_interpreter or any(n.startswith(_BASE_SONAMES) for n in (*obj.names, obj.realpath.rsplit("/")[-1])):
            role = "base"
        elif obj.path in extra and obj.loader is None:
            role = extra[obj.path][1]
        elif obj.path in roots_set and obj.loader is None:
            role = "app"
        else:
            role = "libs"
        roles[obj.path] = role
    # An extra root may be asked for through a symlinked directory (/lib/...); the copy plan has its real path.
    extra_reason = {o.realpath: extra[o.path][0] for o in closure.objects if o.path in extra and o.loader is None}
    entries = []
    for e in closure.entries:
        digest = run.digest(e.source) if e.kind == "file" and e.source else None
        # Stored outputs are read-only in the cache; a program shipped from one is executable in the image.
        mode = 0o755 if e.path in overlay else e.mode
        reason = extra_reason.get(e.path, e.reason) if e.reason == "binary" else e.reason
        entries.append({"path": e.path, "kind": e.kind, "mode": mode, "target": e.target, "source": e.source,
                        "digest": digest, "size": e.size, "reason": reason})
    planned = {e["path"] for e in entries}
    runtime_files = []
    more = [f for f in found.files.values() if plan is None or f.path not in plan.files]
    for f in [*(plan.files.values() if plan else ()), *more]:
        if f.path in planned:
            continue
        digest = run.digest(f.source) if f.kind == "file" and f.source else None
        runtime_files.append({"path": f.path, "kind": f.kind, "mode": f.mode, "target": f.target,
                              "source": f.source, "digest": digest, "size": f.size, "reason": f.reason,
                              **({"data": f.data.decode()} if f.data is not None else {})})
    objects = [{"path": o.path, "realpath": o.realpath, "names": list(o.names), "loader": o.loader,
                "needed": [list(n) for n in o.needed], "role": roles[o.path], "soname": o.soname,
                "interpreter": o.is_interpreter} for o in closure.objects]
    return {
        "roots": list(closure.roots), "entries": entries, "objects": objects, "runtime": runtime_files,
        "warnings": [*closure.warnings, *(plan.warnings if plan else ()), *found.warnings],
        "architecture": closure.architecture, "variant": closure.variant,
    }


MAX_PROBE_ROUNDS = 8
PROBE_REASON = "probe: "
# Paths never taken from the sysroot for the probe: the kernel's and the runtime's, scratch and home
# directories (with sysroot `/` they are the build machine's own), and the loader's cache of the sysroot.
_PROBE_SKIP_DIRS = ("/proc", "/sys", "/dev", "/tmp", "/var/tmp", "/run", "/var/run", "/root", "/home", "/mnt",
                    "/media", "/var/log")
# /etc/hosts, /etc/hostname and /etc/resolv.conf are the container runtime's to provide.
_PROBE_SKIP_FILES = ("/", "/etc/ld.so.cache", "/etc/ld.so.preload", "/etc/hosts", "/etc/hostname",
                     "/etc/resolv.conf", "/etc/mtab")



def _probe_round(run: ActionRun, doc: dict[str, Any], found: Any, overlay: dict[str, str]) -> tuple[int, list[Any]]:
    """Run every probe command in the image as `doc` makes it; add to `found` what they looked for that the
    sysroot has and the image has not. Returns how many entries were added, and the results."""
    import stat
    import tempfile

    from minibuild.elf.sysroot import Sysroot, parent_dirs
    from minibuild.image import probe
    from minibuild.image.runtime.copy import copy_path
    from minibuild.image.runtime.model import RuntimeFile

    p = run.params
    spec = p["probe"]
    if spec.get("platform_arch") and spec["platform_arch"] != host_architecture():
        from minibuild.errors import InputError

        raise InputError(f"`probe` runs the image's programs, which are for `{spec['platform_arch']}`; this "
                         f"machine is `{host_architecture()}`", hint="probe the image of the host's platform only")
    files = [{**f, "digest": run.digest(run.inputs[f["input"]])} for f in spec["files"]]
    tree, _ = build_tree(doc, files, run.inputs, spec["user_name"], spec["ld_so_cache"])
    work = os.path.dirname(_only_output(run))
    with tempfile.TemporaryDirectory(dir=work, prefix="probe-", ignore_cleanup_errors=True) as tmp:
        image = os.path.join(tmp, "image")
        os.mkdir(image)
        probe.materialize(tree, image)
        results = []
        for i, command in enumerate(spec["commands"]):
            log = os.path.join(tmp, str(i), "trace")
            os.mkdir(os.path.dirname(log))
            results.append(probe.run_probe(command, image, p["sysroot"], env=p["env"], workdir=p["workdir"],
                                           user=spec["user"], timeout=spec["timeout"], log=log))
    # The image has a path when the tree has it, or has something below it (directories are implied).
    present = set(tree.entries) | {d for path in tree.entries for d in parent_dirs(path)}
    fs = Sysroot(p["sysroot"], overlay)
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
                found.add(RuntimeFile(real, "dir", stat.S_IMODE(look.st.st_mode), reason))
    root = p["sysroot"].rstrip("/")
    run.discover(*(root + path for path in fs.probed if path not in overlay))
    return len(found.files) + len(found.elf_roots) - before, results


def _etc_files(user: str) -> list[TreeEntry]:
    passwd = "root:x:0:0:root:/root:/bin/sh\n"
    group = "root:x:0:\n"
    if user == "nonroot":
        passwd += "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
        group += "nonroot:x:65532:\n"
    made = "generated by minibuild"
    return [
        TreeEntry("/etc/passwd", "file", 0o644, "users (root)", made, data=passwd.encode()),
        TreeEntry("/etc/group", "file", 0o644, "groups (root)", made, data=group.encode()),
        TreeEntry("/tmp", "dir", 0o1777, "scratch directory", made),
    ]


def _cache_entries(closure: dict[str, Any], files: list[dict[str, Any]], inputs: dict[str, str],
                   tree: ImageTree) -> list[tuple[str, str]]:
    """(soname, path) of every shared library of the image, as ldconfig lists them: `dir/soname` when that
    exists in the image, else the path the library was loaded by. Libraries shipped with `files` count too."""
    from minibuild.elf.parse import ElfFormatError, read_elf

    found = [(obj.get("soname"), obj["path"]) for obj in closure["objects"] if not obj["interpreter"]]
    for f in files:
        try:
            found.append((read_elf(inputs[f["input"]]).soname, f["dest"]))
        except (ElfFormatError, OSError):
            continue
    out = []
    for soname, path in found:
        if not soname or "/" in soname:
            continue
        by_soname = posixpath.join(posixpath.dirname(path), soname)
        out.append((soname, by_soname if tree.canonical(by_soname) in tree.entries else path))
    return out


def build_tree(closure: dict[str, Any], files: list[dict[str, Any]], inputs: dict[str, str],
               user: str, ld_so_cache: bool = False) -> tuple[ImageTree, dict[str, str]]:
    """The whole image tree, and the layer group of each canonical path."""
    from minibuild.digest import sha256_bytes

    tree = ImageTree()
    order = {"symlink": 0, "dir": 1, "file": 2}
    # The image's own `files` win over runtime files at the same path (e.g. its own nsswitch.conf or CA bundle).
    own = {f["dest"] for f in files}
    runtime = [e for e in closure.get("runtime", []) if e["path"] not in own]
    everything = [(e, "ELF closure") for e in closure["entries"]] + [(e, "runtime files") for e in runtime]
    everything.sort(key=lambda item: (order[item[0]["kind"]], item[0]["path"].count("/"), item[0]["path"]))
    runtime_paths = []
    for e, origin in everything:
        data = e["data"].encode() if "data" in e else None
        added = tree.add(TreeEntry(e["path"], e["kind"], e["mode"], e["reason"], origin, source=e["source"],
                                   data=data, digest=sha256_bytes(data) if data is not None else e["digest"],
                                   size=len(data) if data is not None else e["size"], target=e["target"]))
        # Generated files sit with /etc/passwd on top; sysroot data (trees, bundles) in the runtime layer.
        if origin == "runtime files" and data is None:
            runtime_paths.append(added.path)
    for e in _etc_files(user):
        tree.add(TreeEntry(**{**e.__dict__, "digest": sha256_bytes(e.data) if e.data is not None else None,
                              "size": len(e.data or b"")}))
    for f in files:
        src = inputs[f["input"]]
        tree.add(TreeEntry(f["dest"], "file", f["mode"], "file", f["origin"], source=src,
                           digest=f.get("digest"), size=os.path.getsize(src)))
    if ld_so_cache:
        from minibuild.image.runtime.ldcache import write_cache

        data = write_cache(_cache_entries(closure, files, inputs, tree), closure.get("architecture"))
        tree.add(TreeEntry("/etc/ld.so.cache", "file", 0o644, "ld.so.cache of the image's libraries",
                           "generated by minibuild", data=data, digest=sha256_bytes(data), size=len(data)))
    groups: dict[str, str] = {path: "runtime" for path in runtime_paths}
    rank = {g: i for i, g in enumerate(_GROUPS)}
    walks = {obj["path"]: tree.walk(obj["path"]) for obj in closure["objects"]}
    walkers: dict[str, int] = {}
    for obj in closure["objects"]:
        for path in walks[obj["path"]]:
            walkers[path] = walkers.get(path, 0) + 1
            old = groups.get(path)
            if old is None or rank[obj["role"]] < rank[old]:
                groups[path] = obj["role"]
    # A big library gets a layer of its own (with the symlinks only it is reached by), so every image of a
    # catalog that needs it shares that layer, whatever other libraries each needs.
    for obj in closure["objects"]:
        walk = walks[obj["path"]]
        real = tree.entries.get(walk[-1]) if walk else None
        if obj["role"] != "libs" or real is None or real.kind != "file" or real.size < BIG_LIBRARY:
            continue
        for path in walk:
            if groups.get(path) == "libs" and (path == real.path or walkers[path] == 1):
                groups[path] = "lib:" + real.path
    return tree, groups


def write_layers(run: ActionRun) -> None:
    from minibuild.oci.layer import LayerEntry, write_layer

    p = run.params
    closure = _read_json(run.inputs[p["closure"]])
    files = [{**f, "digest": run.digest(run.inputs[f["input"]])} for f in p["files"]]
    tree, groups = build_tree(closure, files, run.inputs, p["user"], p.get("ld_so_cache", False))
    if not p.get("allow_secrets"):
        _refuse_secrets(tree, run.action.owner)
    if not p.get("keep_setuid"):
        # setuid/setgid programs are rarely meant to be so in a container; Docker's default drops them
        # anyway only at run time, so the image should not carry them unless asked.
        for path, e in list(tree.entries.items()):
            if e.kind == "file" and e.mode & 0o6000:
                tree.entries[path] = dataclasses.replace(e, mode=e.mode & ~0o6000)
    # What the base image already has, byte for byte, is not written again.
    base_layers = _read_json(run.inputs[p["base_layers"]])["layers"] if p["base_layers"] else []
    below = {f["path"]: f for f in image_files({"layers": base_layers})}
    by_group: dict[str, list[TreeEntry]] = {g: [] for g in _GROUPS}
    single = p.get("layering") == "single"
    for path, entry in sorted(tree.entries.items()):
        if _same_as_base(entry, below.get(path)):
            continue
        by_group.setdefault("app" if single else groups.get(path, "app"), []).append(entry)
    layers = []
    work = os.path.dirname(_only_output(run))
    def write(group: str) -> Any:
        entries = [LayerEntry(e.path, e.kind, e.mode, source=e.source, data=e.data, target=e.target, origin=e.origin)
                   for e in by_group[group]]
        return write_layer(entries, os.path.join(work, _layer_file(group)), compression=p["compression"],
                           gzip_level=p["gzip_level"], epoch=p["epoch"])

    if p.get("max_size"):
        _check_budget(tree, below, p["max_size"], run.action.owner)
    # Bottom to top: loader and libc, each big library (by path), the other libraries, runtime files, the app.
    big = sorted(g for g in by_group if g.startswith("lib:"))
    groups_used = [g for g in (_GROUPS[0], *big, *_GROUPS[1:]) if by_group[g]]
    # Compression and hashing release the GIL, so the layers are written side by side.
    with ThreadPoolExecutor(max_workers=len(groups_used) or 1) as pool:
        written = list(pool.map(write, groups_used))
    for group, layer in zip(groups_used, written, strict=True):
        run.store_blob(os.path.join(work, _layer_file(group)), layer.descriptor.digest)
        layers.append({
            "digest": layer.descriptor.digest, "size": layer.descriptor.size,
            "media_type": layer.descriptor.media_type, "diff_id": layer.diff_id,
            "uncompressed_size": layer.uncompressed_size,
            "created_by": _HISTORY.get(group) or f"minibuild: shared library {posixpath.basename(group[4:])}",
            "files": [{"path": e.path, "kind": e.kind, "size": e.size if e.kind == "file" else 0, "mode": e.mode,
                       "reason": e.reason, **({"target": e.target} if e.target else {}),
                       **({"digest": e.digest} if e.digest else {})} for e in by_group[group]],
        })
    _write_json(_only_output(run), {
        # The whole image, bottom first: a base image's layers included.
        "layers": base_layers + layers, "architecture": closure.get("architecture"),
        "variant": closure.get("variant"), "warnings": closure.get("warnings", []),
        "max_size": p.get("max_size"),
    })


_SECRET_PATHS = re.compile(r"(^/etc/g?shadow-?$)|(/\.ssh/)|(/\.docker/config\.json$)|(/\.aws/credentials$)|"
                           r"(/\.netrc$)|(/\.git-credentials$)")
_SECRET_SUFFIXES = (".pem", ".key", ".p12", ".pfx")


def _refuse_secrets(tree: ImageTree, owner: object) -> None:
    """Files that look like private keys or credentials stop the build unless `allow_secrets = true`."""
    from minibuild.errors import InputError

    for path, e in sorted(tree.entries.items()):
        if e.kind != "file":
            continue
        why = "its path is a well-known credentials file" if _SECRET_PATHS.search(path) else None
        if why is None and path.endswith(_SECRET_SUFFIXES):
            head = e.data[:1 << 16] if e.data is not None else _head(e.source)
            if b"PRIVATE KEY" in head:
                why = "it holds a PRIVATE KEY"
        if why:
            raise InputError(f"`{owner}` would ship `{path}`, which looks like a secret: {why}",
                             causes=(f"from {e.origin}: {e.reason}",),
                             hint="remove it from the image, or set `allow_secrets = true` if it is meant to ship")


def _head(source: str | None) -> bytes:
    if not source:
        return b""
    with open(source, "rb") as f:
        return f.read(1 << 16)


def _layer_file(group: str) -> str:
    return "layer-" + group.replace("/", "_").replace(":", "_")


def _check_budget(tree: ImageTree, below: dict[str, Any], budget: int, owner: object) -> None:
    """The whole image (a base image's files included) must fit in `max_size` bytes, uncompressed."""
    from minibuild.errors import BuildError

    files = [e for e in tree.entries.values() if e.kind == "file"]
    files += [TreeEntry(f["path"], "file", f.get("mode", 0o644), f["reason"], "base image", size=f["size"])
              for f in below.values() if f["kind"] == "file" and f["path"] not in tree.entries]
    total = sum(e.size for e in files)
    if total <= budget:
        return
    biggest = sorted(files, key=lambda e: -e.size)[:8]
    raise BuildError(
        f"`{owner}` is {total:,} bytes, over its `max_size` of {budget:,} bytes by {total - budget:,}",
        causes=tuple(f"{e.size:>12,}  {e.path}  ({e.reason})" for e in biggest),
        hint="drop what the image does not need, or raise `max_size`",
    )


def _same_as_base(entry: TreeEntry, below: dict[str, Any] | None) -> bool:
    if below is None or below["kind"] != entry.kind or below.get("mode", entry.mode) != entry.mode:
        return False
    if entry.kind == "symlink":
        return below.get("target") == entry.target
    if entry.kind == "file":
        return entry.digest is not None and below.get("digest") == entry.digest
    return True


def _layer(d: dict[str, Any]) -> Any:
    from minibuild.oci.layer import Layer
    from minibuild.oci.spec import Descriptor

    return Layer(Descriptor(d["media_type"], d["digest"], d["size"]), d["diff_id"], d["uncompressed_size"])


def write_image(run: ActionRun) -> None:
    from minibuild.oci.archive import write_docker_archive
    from minibuild.oci.image import ImageConfig, Platform, assemble_image

    p = run.params
    info = _read_json(run.inputs[p["layers"]])
    all_layers = info["layers"]
    layers = [(_layer(d), run.blob_path(d["digest"])) for d in all_layers]
    c = p["config"]
    config = ImageConfig(
        entrypoint=tuple(c["entrypoint"]), cmd=tuple(c["cmd"]), env=tuple(c["env"]), workdir=c["workdir"],
        user=c["user"], labels=tuple(sorted(c["labels"].items())), exposed_ports=tuple(c["exposed_ports"]),
        stop_signal=c["stop_signal"],
    )
    architecture, variant = info["architecture"], info.get("variant")
    if p["base"]:
        with open(run.inputs[p["base"]["config"]], encoding="utf-8") as f:
            base_config = json.load(f)
        config = config.inherit(ImageConfig.from_json(base_config.get("config")))
        if architecture is None:
            architecture, variant = base_config.get("architecture"), base_config.get("variant")
    if p.get("platform"):
        want_arch, want_variant = parse_platform(p["platform"])
        architecture, variant = want_arch, want_variant or (variant if architecture == want_arch else None)
    platform = Platform(os="linux", architecture=architecture or "amd64", variant=variant)
    image = assemble_image(platform, config, layers, [d["created_by"] for d in all_layers],
                           epoch=p["epoch"], annotations=p["annotations"] or None)
    names = p["outputs"]
    with open(run.outputs[names["config"]], "wb") as f:
        f.write(image.config_bytes)
    with open(run.outputs[names["manifest"]], "wb") as f:
        f.write(image.manifest_bytes)
    if "image" in names:
        write_docker_archive(run.outputs[names["image"]], config=image.config_bytes, layers=layers,
                             repo_tags=[p["tag"]], manifest=image.manifest_bytes)


def host_architecture() -> str:
    import platform

    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(machine, machine)


def write_index(run: ActionRun) -> None:
    """An OCI image index over the platforms' manifests, and a docker tarball of the host's platform."""
    from minibuild.oci.archive import write_docker_archive
    from minibuild.oci.image import MEDIA_TYPE_MANIFEST, Platform, descriptor_for, index_json

    p = run.params
    manifests = []
    chosen = None
    for img in p["images"]:
        with open(run.inputs[img["config"]], "rb") as f:
            config_bytes = f.read()
        with open(run.inputs[img["manifest"]], "rb") as f:
            manifest_bytes = f.read()
        doc = json.loads(config_bytes)
        platform = Platform(os=doc.get("os", "linux"), architecture=doc["architecture"], variant=doc.get("variant"))
        manifests.append(descriptor_for(manifest_bytes, MEDIA_TYPE_MANIFEST, platform=platform))
        if chosen is None or platform.architecture == host_architecture():
            chosen = (img, config_bytes, manifest_bytes)
    with open(run.outputs["index.json"], "wb") as f:
        f.write(index_json(manifests, p["annotations"] or None))
    img, config_bytes, manifest_bytes = chosen
    layers = [(_layer(d), run.blob_path(d["digest"])) for d in _read_json(run.inputs[img["layers"]])["layers"]]
    write_docker_archive(run.outputs["image.tar"], config=config_bytes, layers=layers, repo_tags=[p["tag"]],
                         manifest=manifest_bytes)


def image_files(layers_json: dict[str, Any]) -> list[dict[str, Any]]:
    """Every entry of an image (top layer wins), sorted by path: what the report lists."""
    seen: dict[str, dict[str, Any]] = {}
    for layer in layers_json["layers"]:
        for f in layer["files"]:
            seen[f["path"]] = f
    return [seen[k] for k in sorted(seen, key=lambda p: posixpath.normpath(p))]
