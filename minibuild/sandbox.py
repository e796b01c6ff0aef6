"""Run a command the build does not trust: in namespaces of its own, with a deadline, and stopped for good.

Shared by the genrule (rules/genrule.py; what its sandbox promises is in docs/sandbox.md) and the probe
(image/probe.py, docs/probe.md):

- `namespaces()`: `setpriv --pdeathsig KILL -- unshare ...`, new mount, PID, IPC, UTS (and network)
  namespaces, a user namespace too when minibuild is not root. If minibuild dies, unshare dies with it, and
  `--kill-child` takes the namespace's init with it: the kernel then kills everything else inside.
- `DEV_SETUP`: the shell function that gives a new root a /dev holding only harmless devices.
- `run_process()`: a process in a session of its own, its output streamed to a file (never held in
  memory), a deadline; its whole process group is killed at the deadline, when it ends (what it left
  running) and on `cancel_all()`, which the command line calls on SIGINT and SIGTERM.
- `run_sandboxed()` / `run_unsandboxed()`: the genrule's two ways to run a command, and `take_outputs()`, which
  copies what it wrote out of its work directory (regular files only; never a link to something else).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from typing import IO

from minibuild.errors import BuildError

# Devices a sandboxed command gets in its /dev (bind-mounted from the host's); nothing else of the host's /dev.
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_SETUP = r"""
devices() {  # devices DIR: a tmpfs at DIR with the harmless devices of the host, and the /dev/fd links
    mount -t tmpfs -o mode=755,size=1m tmpfs "$1"
    for d in DEVICES; do
        if [ -e "/dev/$d" ]; then touch "$1/$d"; mount --bind "/dev/$d" "$1/$d"; fi
    done
    ln -s /proc/self/fd "$1/fd"; ln -s fd/0 "$1/stdin"; ln -s fd/1 "$1/stdout"; ln -s fd/2 "$1/stderr"
}
""".replace("DEVICES", " ".join(DEVICES))

NOBODY = 65534  # the user a sandboxed command runs as when minibuild is root
WORK = "/build"  # the command's working directory inside the sandbox, where it writes its outputs
SOURCES = "/src"  # its declared sources, read-only, at their paths in the workspace below this
HOME = "/home/build"
_READY = "minibuild: sandbox ready"
# Top-level directories of the host never shown in the sandbox: each is empty (a tmpfs of its own) or absent.
_NOT_SHOWN = ("proc", "sys", "dev", "tmp", "run", "home", "root", "mnt", "media", "lost+found", "build", "src")

# Runs as the namespaces' init (PID 1): builds the sandbox's root on a tmpfs, then runs the command in it as
# a child, so that when the command ends, init ends, and the kernel kills whatever the command left behind.
# `remount,bind,ro` changes one mount point, never the file system beneath it (plain `remount,ro` would).
_SETUP = DEV_SETUP + r"""
set -eu
unset PWD OLDPWD
path=$PATH
PATH=/usr/sbin:/usr/bin:/sbin:/bin
root=$1 work=$2 srcs=$3 ids=$4 unshare=$5 setpriv=$6 drop=$7 resolv=$8
shift 8
mount -t tmpfs -o mode=755 tmpfs "$root"
for entry in /*; do
    name=${entry#/}
    case $name in CASE_NOT_SHOWN) continue ;; esac
    if [ -L "$entry" ]; then
        ln -s "$(readlink "$entry")" "$root/$name"
    elif [ -d "$entry" ]; then
        mkdir "$root/$name"
        mount --rbind "$entry" "$root/$name"
    fi
done
while read -r _ _ _ _ point _; do
    point=$(printf '%b' "$point")
    case $point in "$root"/*) mount -o remount,bind,ro "$point" ;; esac
done < /proc/self/mountinfo
for d in LIST_NOT_SHOWN; do [ -e "$root/$d" ] || mkdir "$root/$d"; done
mount -t proc proc "$root/proc"
devices "$root/dev"
mkdir "$root/dev/shm"
for d in tmp dev/shm var/tmp; do
    if [ -d "$root/$d" ] && [ ! -L "$root/$d" ]; then mount -t tmpfs -o mode=1777 tmpfs "$root/$d"; fi
done
mount -t tmpfs -o mode=755 tmpfs "$root/run"
mount -t tmpfs -o mode=700 tmpfs "$root/root"
mount -t tmpfs -o mode=755 tmpfs "$root/home"
mkdir "$root/home/build"
chown "$ids" "$root/home/build"
while [ "$1" != -- ]; do
    if [ -d "$root$1" ] && [ ! -L "$root$1" ]; then mount -t tmpfs -o ro,mode=755,size=4k tmpfs "$root$1"; fi
    shift
done
shift
if [ "$resolv" != - ]; then
    mkdir -p "$root${resolv%/*}"; touch "$root$resolv"; mount --bind -o ro "$resolv" "$root$resolv"
fi
mount --bind "$work" "$root/build"
mount --bind -o ro "$srcs" "$root/src"
mount -o remount,bind,ro "$root/dev"
mount -o remount,bind,ro "$root"
echo "READY" >&2
exec 2>&1
export PATH="$path"
set +e
"$unshare" --root="$root" --wd=/build -- "$setpriv" $drop -- "$@"
exit $?
""".replace("CASE_NOT_SHOWN", "|".join(_NOT_SHOWN)).replace("LIST_NOT_SHOWN", " ".join(_NOT_SHOWN)).replace(
    "READY", _READY)

# Runs an unsandboxed command as its child: when minibuild dies, setpriv's parent-death signal reaches this
# shell, which kills its whole process group (the command and whatever it started) before it goes.
_SUPERVISE = 'trap "kill -KILL 0" TERM; "$@" & wait $!'

_lock = threading.RLock()
_running: set[int] = set()  # process groups of the commands running now
_cancelled = False


def cancel_all() -> None:
    """Kill every command running now and start no other: minibuild is being stopped (SIGINT, SIGTERM)."""
    global _cancelled
    with _lock:
        _cancelled = True
        for group in list(_running):
            _kill_group(group)


def _kill_group(group: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signal.SIGKILL)


def find_tool(name: str, package: str, user: str, instead: str) -> str:
    """The host path of a program minibuild runs; a clear error naming the package when it is missing."""
    path = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/bin:/bin")
    if path is None:
        raise BuildError(f"{user} needs `{name}` on the build machine, and it is not on PATH",
                         hint=f"install it (Debian: `apt-get install {package}`)"
                              + (f", or {instead}" if instead else ""))
    return path


def namespaces(setpriv: str, unshare: str, *, network: bool) -> list[str]:
    """The command prefix that starts a program in new namespaces, none of it left behind if minibuild dies."""
    argv = [setpriv, "--pdeathsig", "KILL", "--", unshare]
    if os.geteuid() != 0:
        argv.append("--map-root-user")
    argv += ["--mount", "--pid", *([] if network else ["--net"]), "--ipc", "--uts", "--kill-child",
             "--propagation", "private"]
    return argv


def run_process(argv: Sequence[str], *, env: Mapping[str, str], timeout: float, output: str,
                errors: str | None = None, cwd: str | None = None) -> int | None:
    """Run `argv` with its output (and, without `errors`, its error output) streamed into the file `output`.
    Its exit status (negative: the signal that killed it), or None when it ran out of time and was killed.
    Whatever it started that is still running in its process group when it ends is killed too."""
    with _lock:
        if _cancelled:
            raise BuildError("stopped: minibuild is being interrupted")
        with open(output, "wb") as out, _open_or_none(errors) as err:
            try:
                proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out,
                                        stderr=err if err is not None else subprocess.STDOUT, env=dict(env), cwd=cwd,
                                        start_new_session=True)
            except OSError as e:
                raise BuildError(f"cannot start `{argv[0]}`: {e.strerror}") from None
        _running.add(proc.pid)
    try:
        finished = _wait_unreaped(proc.pid, time.monotonic() + timeout)
    finally:
        with _lock:
            _running.discard(proc.pid)
        _kill_group(proc.pid)  # the group still exists: its leader is not reaped yet
        proc.wait()
    if _cancelled:
        raise BuildError("stopped: minibuild is being interrupted")
    return proc.returncode if finished else None


def _open_or_none(path: str | None) -> contextlib.AbstractContextManager[IO[bytes] | None]:
    return open(path, "wb") if path is not None else contextlib.nullcontext(None)


def _wait_unreaped(pid: int, deadline: float) -> bool:
    """Wait until `pid` has ended (True) or the deadline (False), leaving it unreaped: its process group id
    cannot be reused before the group is killed."""
    delay = 0.001
    while True:
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return True
        now = time.monotonic()
        if now >= deadline:
            return False
        time.sleep(min(delay, deadline - now))
        delay = min(delay * 2, 0.05)


def tail(path: str, lines: int = 20, max_bytes: int = 8192, line_chars: int = 400) -> list[str]:
    """The last `lines` lines of a file, read from its last `max_bytes` bytes whatever its size, each cut to
    `line_chars` characters: one long line of output stays one short line of a message."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return []
    found = data.decode("utf-8", "replace").rstrip("\n").split("\n")
    if found == [""]:
        return []
    shown = [line if len(line) <= line_chars else line[:line_chars] + " [... cut]" for line in found[-lines:]]
    if size > max_bytes and len(found) <= lines:  # the first line read is the end of a longer one
        shown[0] = "[... cut] " + found[0][-line_chars:]
    return shown


def remove_tree(path: str) -> None:
    """Remove a scratch tree whatever a command left in it, directories it made unreadable included. Links
    are never followed (a chmod through one would change what it points to)."""
    if not os.path.isdir(path) or os.path.islink(path):
        return
    with contextlib.suppress(OSError):
        os.chmod(path, 0o700)
    for top, dirs, _ in os.walk(path):
        for d in dirs:
            full = os.path.join(top, d)
            if not os.path.islink(full):
                with contextlib.suppress(OSError):
                    os.chmod(full, 0o700)
    shutil.rmtree(path, ignore_errors=True)


def prepare(scratch: str, sources: Mapping[str, str]) -> tuple[str, str]:
    """Make `scratch`'s work/ (the command's working directory) and src/ (`sources`, paths relative to the
    workspace -> host paths, linked or copied there); the two directories. A source linked there is shown only
    read-only, so the command cannot change it; one another user could not read is copied."""
    work, srcs = os.path.join(scratch, "work"), os.path.join(scratch, "src")
    for d in (work, srcs, os.path.join(scratch, "root")):
        os.mkdir(d)
        os.chmod(d, 0o755)
    if os.geteuid() == 0:
        os.chown(work, NOBODY, NOBODY)  # the command runs as nobody: its work directory is the one it may write
    for rel, host in sources.items():
        dest = os.path.join(srcs, rel)
        if os.path.lexists(dest):
            continue  # never write through a link made here to a workspace file
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        st = os.stat(host)
        if os.geteuid() != 0 or st.st_mode & 0o004:
            with contextlib.suppress(OSError):
                os.link(host, dest, follow_symlinks=True)
                continue
        shutil.copyfile(host, dest)
        os.chmod(dest, 0o555 if st.st_mode & 0o111 else 0o444)
    for top, dirs, _ in os.walk(srcs):
        for d in dirs:
            os.chmod(os.path.join(top, d), 0o755)  # whatever the umask: the command may be another user
    return work, srcs


def private_home() -> list[str]:
    """The user's home, for a sandbox to show empty; none when it is the root or a system directory a command
    needs (a service user's home may be `/`, `/usr/sbin` or `/var`)."""
    home = os.path.realpath(os.path.expanduser("~"))
    system = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
    if home in ("/", "/var", "/opt", "/srv") or any(home == d or home.startswith(d + "/") for d in system):
        return []
    return [home]


def run_sandboxed(command: Sequence[str], *, scratch: str, env: Mapping[str, str], network: bool, timeout: float,
                  log: str, hide: Sequence[str], what: str) -> int | None:
    """Run `command` in a sandbox built from `scratch` (see `prepare`); `hide`: host directories shown empty
    (the workspace, the cache, the user's home). Its exit status, or None at its timeout (docs/sandbox.md)."""
    instead = "set `sandbox = false` on the target (docs/sandbox.md)"
    setpriv = find_tool("setpriv", "util-linux", what, instead)
    unshare = find_tool("unshare", "util-linux", what, instead)
    root = os.geteuid() == 0
    ids = f"{NOBODY}:{NOBODY}" if root else "0:0"
    # No capabilities, no way to gain any (setuid programs included); as root, the user nobody too.
    drop = (f"--reuid={NOBODY} --regid={NOBODY} --clear-groups " if root else "") + \
        "--no-new-privs --bounding-set=-all --inh-caps=-all"
    resolv = os.path.realpath("/etc/resolv.conf")
    resolv = resolv if network and resolv.startswith("/run/") else "-"  # systemd-resolved's, under the hidden /run
    hidden = sorted({os.path.realpath(h) for h in hide} - {"/"})
    argv = [*namespaces(setpriv, unshare, network=network), "/bin/sh", "-c", _SETUP, "sandbox",
            os.path.join(scratch, "root"), os.path.join(scratch, "work"), os.path.join(scratch, "src"), ids,
            unshare, setpriv, drop, resolv, *hidden, "--", *command]
    setup = os.path.join(scratch, "setup.log")
    code = run_process(argv, env=env, timeout=timeout, output=log, errors=setup)
    with open(setup, encoding="utf-8", errors="replace") as f:
        ready = _READY in f.read(65536)
    if not ready:
        raise BuildError(f"the sandbox of {what} could not be set up", causes=tuple(tail(setup, 6)) or ("(no output)",),
                         hint="the sandbox needs root or unprivileged user namespaces (sysctl "
                              "kernel.unprivileged_userns_clone=1; Ubuntu 24.04: "
                              "kernel.apparmor_restrict_unprivileged_userns=0), or " + instead)
    return code


def run_unsandboxed(command: Sequence[str], *, cwd: str, env: Mapping[str, str], timeout: float, log: str,
                    what: str) -> int | None:
    """Run `command` as minibuild's user, on the host as it is: only its deadline and the end of its process
    group are minibuild's (docs/sandbox.md, `sandbox = false`)."""
    setpriv = find_tool("setpriv", "util-linux", what, "")
    argv = [setpriv, "--pdeathsig", "TERM", "--", "/bin/sh", "-c", _SUPERVISE, "supervise", *command]
    return run_process(argv, env=env, timeout=timeout, output=log, cwd=cwd)


def take_outputs(work: str, outputs: Mapping[str, str], *, inside: str | None, owner: str) -> None:
    """Copy each output `name` the command wrote in `work` to `outputs[name]`: a regular file, or a symbolic
    link to one inside `work` (`inside`: the path `work` has for the command, if not its own). A link to
    anything outside, a hard link with a name outside, anything else is an error; nothing outside `work` is
    opened, nothing in it is changed (a copy is stored, never the command's file)."""
    names_inside: dict[tuple[int, int], int] | None = None
    for name, dest in outputs.items():
        source = _output_file(work, name, inside, owner)
        st = os.lstat(source)
        if st.st_nlink > 1:
            names_inside = names_inside if names_inside is not None else _links_in(work)
            if st.st_nlink > names_inside.get((st.st_dev, st.st_ino), 0):
                raise BuildError(f"output `{name}` of `{owner}` is a hard link to a file outside its work directory",
                                 hint="write the output itself (`cp`, not `ln`): an output is a file the "
                                      "command made (docs/sandbox.md)")
        _copy(source, dest, executable=bool(st.st_mode & 0o111))


def _output_file(work: str, name: str, inside: str | None, owner: str) -> str:
    """The host path of the regular file inside `work` the output `name` is (itself, or what its link names)."""
    path = os.path.join(work, name)
    try:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            target = os.readlink(path)
            if inside is not None and (target == inside or target.startswith(inside + "/")):
                target = work + target[len(inside):]
            real, top = os.path.realpath(os.path.join(work, target)), os.path.realpath(work)
            if not real.startswith(top + os.sep):
                raise BuildError(f"output `{name}` of `{owner}` is a symbolic link to `{os.readlink(path)}`, "
                                 "outside its work directory",
                                 hint="write the output itself (`cp`, not `ln -s`): an output is a file the "
                                      "command made; nothing outside its work directory is read or changed")
            path, st = real, os.lstat(real)
    except FileNotFoundError:
        raise BuildError(f"`{owner}` did not write its declared output `{name}`"
                         + (" (a symbolic link to nothing)" if os.path.islink(path) else ""),
                         hint="write every name of `outs` in the working directory (`$(OUTS)`)") from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "a device, socket or pipe"
        raise BuildError(f"output `{name}` of `{owner}` is {kind}, not a regular file",
                         hint="an output is one regular file; pack a directory into one (`tar`)")
    return path


def _links_in(work: str) -> dict[tuple[int, int], int]:
    """How many names each file of `work` has inside it."""
    found: dict[tuple[int, int], int] = {}
    for top, _, files in os.walk(work):
        for f in files:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(top, f))
                if stat.S_ISREG(st.st_mode):
                    found[(st.st_dev, st.st_ino)] = found.get((st.st_dev, st.st_ino), 0) + 1
    return found


def _copy(source: str, dest: str, *, executable: bool) -> None:
    """A new file at `dest` with the bytes of `source` (opened without following a link)."""
    fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise BuildError(f"`{source}` is not a regular file any more")
        out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            offset = 0
            while sent := os.sendfile(out, fd, offset, 1 << 30):
                offset += sent
            os.fchmod(out, 0o755 if executable else 0o644)
        finally:
            os.close(out)
    finally:
        os.close(fd)
