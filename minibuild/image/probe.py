"""The dynamic probe: run a command in an image under `strace -f` and list every path it looked for, so the
files a program finds only at run time (dlopen, data files, programs it runs) can be added to the image.

The image tree is written to a scratch directory (copies, never links: the command runs as root and may
write) and laid over the sysroot with overlayfs, so the command sees the image's own files first and
everything the sysroot has beneath them (a directory it lists is whole; a plugin it dlopens loads and
dlopens its own). Writes go to a tmpfs on top. The command runs in fresh mount, PID, network, IPC and
UTS namespaces (`unshare`; a user namespace too when not root) with its own /proc, a /dev holding only
harmless devices, an empty /tmp, no network, the image's environment, working directory and user.
strace is the build host's and runs outside the new root: everything traced before the `chroot()` that
enters it is the host's own start-up and is ignored.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from minibuild import sandbox
from minibuild.errors import BuildError
from minibuild.image.tree import ImageTree

# Syscalls whose first path argument names something the program looks for. Writes, renames and the
# like are left out: a program creating a file does not need it from the sysroot.
_LOOKUPS = frozenset({
    "open", "openat", "openat2", "stat", "lstat", "newfstatat", "fstatat64", "statx", "access", "faccessat",
    "faccessat2", "execve", "execveat", "readlink", "readlinkat", "chdir", "uselib", "statfs", "truncate",
})
# Syscalls whose first argument is a directory fd (`AT_FDCWD</host/dir>` with strace -y).
_AT_SYSCALLS = frozenset({"openat", "openat2", "newfstatat", "fstatat64", "statx", "faccessat", "faccessat2",
                          "execveat", "readlinkat"})
_LINE = re.compile(r"^(\d+)\s+(?:<\.\.\. )?([a-z_0-9]+)\((.*)$")
_FD_ARG = re.compile(r'^(?:AT_FDCWD|-?\d+)(?:<((?:[^>\\]|\\.)*)>)?,\s*"((?:[^"\\]|\\.)*)"')
_PATH_ARG = re.compile(r'^"((?:[^"\\]|\\.)*)"')
_RESUMED = re.compile(r"^(\d+)\s+<\.\.\. ([a-z_0-9]+) resumed>(.*)$")
_RESULT = re.compile(r"\)\s+=\s+(-?\d+)(?:<.*>)?(?:\s+[A-Z(].*)?$")  # a call's return value, at the end
_OPENS = frozenset({"open", "openat", "openat2"})
_FORKS = frozenset({"clone", "clone3", "fork", "vfork"})
HIDDEN = ("/etc/ld.so.cache", "/etc/ld.so.preload")


@dataclass(frozen=True)
class ProbeResult:
    command: tuple[str, ...]
    paths: tuple[str, ...]  # in-image absolute paths the command looked for, normalised, sorted, unique
    exit_code: int | None  # None when it ran out of time and was killed
    output: str  # the tail of its stdout and stderr, for messages
    overlay: bool = True  # False: overlayfs was not available and the command saw the image alone
    loads: tuple[tuple[str, ...], ...] = ()  # per process, what it opened in order (`load_orders`)


def unescape(text: str) -> str:
    """A string as strace prints it (C escapes, octal for bytes it does not print) back to the path."""
    raw = text.encode("latin-1", "backslashreplace").decode("unicode_escape").encode("latin-1")
    return raw.decode("utf-8", "surrogateescape")


def parse_trace(lines: Iterable[str], workdir: str = "/") -> list[str]:
    """In-image paths looked up after the first successful `chroot()`, in order of first appearance.

    strace -y prints a directory fd as its host path, so a path relative to a directory fd is made
    absolute through it (less the root's host path), and one relative to the cwd through the last cwd
    seen for that process (the image's workdir before any).
    """
    seen: dict[str, None] = {}
    for _, _, path, _ in _events(lines, workdir):
        if path is not None:
            seen.setdefault(path, None)
    return list(seen)


def _events(lines: Iterable[str], workdir: str) -> Iterator[tuple[str, str, str | None, str]]:
    """(pid, syscall, in-image path or None, the rest of the line) of every call after the first `chroot()`;
    a call strace split shows as its first part (with the path) and its `resumed` part (name and rest)."""
    rootfs = ""
    inside = False
    cwd: dict[str, str] = {}
    for line in lines:
        m = _LINE.match(line) or _RESUMED.match(line)
        if m is None:
            continue
        pid, name, args = m.groups()
        if not inside:
            inside = name == "chroot" and args.rstrip().endswith("= 0")
            a = _PATH_ARG.match(args)
            rootfs = unescape(a.group(1)).rstrip("/") if inside and a else ""
            continue
        path = _looked_up(pid, name, args, cwd, workdir, rootfs) if m.re is _LINE and name in _LOOKUPS else None
        yield pid, name, path, args


def _looked_up(pid: str, name: str, args: str, cwd: dict[str, str], workdir: str, rootfs: str) -> str | None:
    """The absolute, normalised in-image path a lookup call names (None: none, or outside the image)."""
    base = cwd.get(pid, workdir)
    if name in _AT_SYSCALLS:
        a = _FD_ARG.match(args)
        if a is None:
            return None
        fd_dir, path = a.group(1), unescape(a.group(2))
        if fd_dir is not None:
            fd_dir = _in_image(unescape(fd_dir), rootfs)
            if fd_dir is None:
                return None  # a directory outside the root: not the image's
            if args.startswith("AT_FDCWD"):
                cwd[pid] = fd_dir
            base = fd_dir
        elif not args.startswith("AT_FDCWD") and not path.startswith("/"):
            return None  # relative to a directory fd strace could not name
    else:
        a = _PATH_ARG.match(args)
        if a is None:
            return None
        path = unescape(a.group(1))
    if not path:
        return None  # fstatat(fd, "", AT_EMPTY_PATH): the fd itself
    full = posixpath.normpath(posixpath.join(base, path))
    return full[1:] if full.startswith("//") else full


def load_orders(lines: Iterable[str], workdir: str = "/") -> list[tuple[str, ...]]:
    """What each process opened, in order: per address space (a process from one `execve` to the next, its
    threads sharing it; a fork starting with a copy of its parent's), the in-image paths of its successful
    `execve` and `open` calls, each once. The loader opens every object it maps, so an object opened before a
    library was loaded before it in that process (docs/loader.md#g19)."""
    spaces: dict[str, list[str]] = {}
    started: dict[str, tuple[str, str | None, str]] = {}  # pid -> the call strace split: name, path, its first part
    for pid, name, path, rest in _events(lines, workdir):
        if rest.rstrip().endswith("<unfinished ...>"):
            started[pid] = (name, path, rest)
            continue
        split = started.get(pid)
        if split is not None and split[0] == name:
            _, path, first = started.pop(pid)
            rest = first + rest
        result = _RESULT.search(rest)
        if result is None or result.group(1).startswith("-"):
            continue
        if name in _OPENS and path is not None:
            spaces.setdefault(pid, []).append(path)
        elif name in ("execve", "execveat") and path is not None:
            spaces[pid] = [path]
        elif name in _FORKS and int(result.group(1)) > 0:
            _forked(spaces, pid, str(int(result.group(1))), shared="CLONE_VM" in rest)
    unique = {id(s): s for s in spaces.values()}
    return [order for s in unique.values() if len(order := tuple(dict.fromkeys(s))) > 1]


def _forked(spaces: dict[str, list[str]], parent: str, child: str, shared: bool) -> None:
    """A thread (or vfork child) shares its parent's address space; a fork gets a copy of it. The child's own
    lines may come before the parent's result: they are kept after what it inherits."""
    mine = spaces.setdefault(parent, [])
    early = spaces.get(child, [])
    if shared:
        mine.extend(early)
        spaces[child] = mine
    else:
        spaces[child] = [*mine, *early]


def _in_image(host_path: str, rootfs: str) -> str | None:
    if host_path == rootfs:
        return "/"
    if host_path.startswith(rootfs + "/"):
        return host_path[len(rootfs):]
    return None


def materialize(tree: ImageTree, dest: str) -> None:
    """Write the image tree into the empty directory `dest`: copies, never links to the sources."""
    order = {"dir": 0, "file": 1, "symlink": 1}
    for path, e in sorted(tree.entries.items(), key=lambda item: (order[item[1].kind], item[0])):
        host = os.path.join(dest, path.lstrip("/"))
        if path == "/":
            continue
        os.makedirs(os.path.dirname(host), exist_ok=True)
        if e.kind == "dir":
            os.makedirs(host, exist_ok=True)
            os.chmod(host, e.mode & 0o7777)
        elif e.kind == "symlink":
            os.symlink(e.target or "", host)
        elif e.data is not None:
            with open(host, "wb") as f:
                f.write(e.data)
            os.chmod(host, e.mode & 0o7777)
        else:
            shutil.copyfile(e.source or "", host, follow_symlinks=True)
            os.chmod(host, e.mode & 0o7777)
    for d in ("proc", "dev", "tmp"):
        path = os.path.join(dest, d)
        if not os.path.lexists(path):
            os.mkdir(path, 0o1777 if d == "tmp" else 0o755)
    # The sysroot's loader cache and preload list lie below the image in the probe; the image's loader
    # will not have them. Empty files mean "no cache" and "nothing preloaded" to glibc's loader.
    for name in HIDDEN:
        path = os.path.join(dest, name.lstrip("/"))
        if not os.path.lexists(path) and os.path.isdir(os.path.dirname(path)):
            open(path, "wb").close()


def tools() -> tuple[str, str, str]:
    """Host paths of strace, unshare and setpriv; a clear error naming the package when one is missing."""
    strace, unshare, setpriv = (sandbox.find_tool(tool, package, "`probe`", "drop `probe`")
                                for tool, package in (("strace", "strace"), ("unshare", "util-linux"),
                                                      ("setpriv", "util-linux")))
    return strace, unshare, setpriv


# Runs in the new namespaces: the image is copied to a tmpfs (an overlay layer must not sit inside another,
# and the sysroot may be `/`), laid over the sysroot with a tmpfs on top for writes, given its own /proc,
# /dev, /tmp and empty home directories; then strace runs the command with its root changed to it. Where
# overlayfs is not available the command runs in the image alone.
_SETUP = sandbox.DEV_SETUP + r"""
set -e
unset PWD OLDPWD
image=$1 mnt=$2 sysroot=$3 strace=$4 log=$5 unshare=$6 wd=$7 ids=$8
shift 8
mount -t tmpfs -o mode=755 tmpfs "$mnt"
mkdir "$mnt/image" "$mnt/upper" "$mnt/work" "$mnt/root"
cp -a "$image/." "$mnt/image/"
root=$mnt/root
if ! mount -t overlay overlay -o "lowerdir=$mnt/image:$sysroot,upperdir=$mnt/upper,workdir=$mnt/work" "$root" \
        2>/dev/null; then
    echo "NO_OVERLAY" >&2
    root=$mnt/image
fi
mount -t proc proc "$root/proc"
devices "$root/dev"
for d in tmp root home; do
    if [ -d "$root/$d" ] && [ ! -L "$root/$d" ]; then mount -t tmpfs -o mode=1777 tmpfs "$root/$d"; fi
done
[ "$ids" = - ] && ids=
exec "$strace" -f -qq -y -s 4096 -e trace=%file,%process -o "$log" -- "$unshare" --root="$root" --wd="$wd" \
    $ids "$@"
""".replace("NO_OVERLAY", "minibuild: no overlayfs")
_NO_OVERLAY = "minibuild: no overlayfs\n"


def user_ids(user: str, rootfs: str) -> tuple[int, int] | None:
    """The uid and gid the image's `user` runs as (None: root), names looked up in the image's /etc/passwd."""
    name, _, group = user.partition(":")
    if name in ("", "root", "0") and group in ("", "root", "0"):
        return None

    def look(db: str, key: str) -> tuple[int, int]:
        if key.isdigit():
            return int(key), int(key)
        try:
            with open(os.path.join(rootfs, "etc", db), encoding="utf-8", errors="replace") as f:
                for line in f:
                    fields = line.rstrip("\n").split(":")
                    if fields[0] == key and len(fields) > 3:
                        return int(fields[2]), int(fields[3] if db == "passwd" else fields[2])
        except (OSError, ValueError):
            pass
        raise BuildError(f"the image's user `{user}` is not in its /etc/{db}, so `probe` cannot run as it",
                         hint="give `user` as numbers (`1000:1000`), or ship an /etc/passwd that names it")

    uid, gid = look("passwd", name)
    if group:
        gid = look("group", group)[0]
    return uid, gid


def run_probe(command: Sequence[str], image: str, sysroot: str, *, env: dict[str, str], workdir: str, user: str,
              timeout: float, log: str) -> ProbeResult:
    """Run `command` in the image tree written at `image` (over `sysroot`) under strace: the paths it
    looked for, its exit status and the tail of its output."""
    strace, unshare, setpriv = tools()
    # If minibuild dies (killed mid-build), so does the probe: setpriv makes unshare die with its parent,
    # and --kill-child takes the new PID namespace, everything the command started, with it.
    ns = sandbox.namespaces(setpriv, unshare, network=False)
    ids = user_ids(user, image)
    mnt = os.path.join(os.path.dirname(log), "mnt")
    os.makedirs(mnt, exist_ok=True)
    argv = [*ns, "/bin/sh", "-c", _SETUP, "probe", image, mnt, sysroot, strace, log, unshare, workdir or "/",
            f"--setgid {ids[1]} --setuid {ids[0]}" if ids else "-", *command]
    output = log + ".out"
    code = sandbox.run_process(argv, env=env, timeout=timeout, output=output)
    with open(output, "rb") as f:
        overlay = not f.read(len(_NO_OVERLAY)).startswith(_NO_OVERLAY.encode())
    last = sandbox.tail(output, lines=10)
    if last and not overlay:
        last[0] = last[0].removeprefix(_NO_OVERLAY.rstrip("\n"))
    text = "\n".join(line for line in last if line)
    try:
        with open(log, encoding="latin-1") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        lines = []
    if not any(re.search(r"\bchroot\(.*= 0$", line) for line in lines):
        raise BuildError(f"the probe `{' '.join(command)}` could not enter the image's root filesystem",
                         causes=tuple(text.strip().splitlines()[-6:]),
                         hint="`probe` runs as root, or needs unprivileged user namespaces "
                              "(sysctl kernel.unprivileged_userns_clone=1)")
    paths = parse_trace(lines, workdir or "/")
    loads = tuple(load_orders(lines, workdir or "/"))
    return ProbeResult(tuple(command), tuple(sorted(set(paths))), code, text, overlay, loads)
