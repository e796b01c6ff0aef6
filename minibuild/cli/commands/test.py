"""`minibuild test`: build image_test targets and their images, load the images, run the checks in Docker.

Checks, as container-structure-test has them:
- commands: run the image (`docker run --rm` with the given args, entrypoint, env), then check the exit
  code and regexes on stdout and stderr; each command has a timeout (default 60 s).
- files: in a container that is created and never started, the path exists (or not), its permission
  bits, a regex on its content.
- metadata: fields of the image config as the engine reports it (`docker image inspect`).

Containers run by image id (the config digest), not by tag, so a tag another build moves meanwhile
cannot swap the image under test.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import posixpath
import re
import shlex
import sys
import tarfile
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from minibuild.build import analyse, build, open_cache
from minibuild.cli.commands import common
from minibuild.cli.test_report import CheckResult, TestResult
from minibuild.errors import EngineError, InputError
from minibuild.oci import daemon
from minibuild.workspace import Workspace
from minibuild_rules.test_providers import ImageTestInfo

# Beyond this a file's content is not read for a `contains` check.
_MAX_CONTENT = 64 << 20
# Enough for a loaded engine to create, start and remove a container (the connection's default is 5 s).
_ENGINE_TIMEOUT = 120
_EXCERPT = 200
# Go's os.FileMode bits, as the engine reports a path's mode.
_GO_DIR, _GO_SYMLINK = 1 << 31, 1 << 27
_GO_SPECIAL = ((1 << 23, 0o4000), (1 << 22, 0o2000), (1 << 20, 0o1000))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("patterns", nargs="+", metavar="LABEL", help="targets to test (labels or patterns, e.g. //...)")
    common.add_build_arguments(p)
    p.add_argument("--junit", metavar="FILE", help="also write the results as JUnit XML to FILE")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object on stdout")


def run(args: argparse.Namespace) -> int:
    # lazy: rich, loaded only when something is drawn
    from minibuild.cli import test_report, ui

    started = time.monotonic()
    workspace = Workspace.find()
    package = workspace.relative_dir(os.getcwd())
    connection = daemon.connect_in_background()  # the client that runs the checks' containers
    with daemon.EngineLoader() as engine:  # loads the images; connects in a process of its own meanwhile
        tests = _test_targets(workspace, args.patterns, package)
        if not tests:
            raise InputError(f"no `image_test` target among {', '.join(f'`{p}`' for p in args.patterns)}",
                             hint="declare one with `[[image_test]]` in a BUILD.toml; see docs/image_test.md")
        image_labels = sorted({info.image_label for _, info in tests})
        progress = ui.Progress(args.plain or args.json)
        with progress.show():
            result = build(workspace, [*args.patterns, *image_labels], package, jobs=args.jobs,
                           on_event=progress.event)
        for w in result.warnings:
            ui.warn(w)
        images = {str(t.label): t for t in result.targets if t.summary}
        client, why = connection()
        if client is None:
            raise EngineError(f"cannot run image tests: {why}",
                              hint="start Docker or set DOCKER_HOST; the built images are in `.minibuild/out`")
        common.load_images(str(workspace.root), [images[label] for label in image_labels], engine=engine)
    client.api.timeout = _ENGINE_TIMEOUT
    results = _run_tests(client.api, tests, images, jobs=min(args.jobs, 8))
    if args.junit:
        try:
            with open(args.junit, "wb") as f:
                f.write(test_report.junit_xml(results))
        except OSError as exc:
            raise InputError(f"cannot write `{args.junit}`: {exc.strerror or exc}") from None
    if args.json:
        json.dump(test_report.as_json(results), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        test_report.render(results, time.monotonic() - started)
    return 0 if all(r.passed for r in results) else 1


def _test_targets(workspace: Any, patterns: Sequence[str], package: str | None) -> list[tuple[str, Any]]:
    """(label, ImageTestInfo) of every requested target that provides one, in label order.

    Analysis as `build()` does it (stored and reused the same way).
    """

    _, stat_cache = open_cache(workspace)
    try:
        labels, configured = analyse(workspace, patterns, package, stat_cache)
    finally:
        stat_cache.save()
    requested = set(labels)
    return [(str(ct.label), p) for ct in configured if ct.label in requested
            for p in ct.providers if isinstance(p, ImageTestInfo)]


def _run_tests(api: Any, tests: Sequence[tuple[str, Any]], images: dict[str, Any], jobs: int) -> list[TestResult]:
    """Every check of every test, `jobs` containers at a time; results in declaration order."""
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        pending = []
        for label, info in tests:
            image_id = images[info.image_label].summary["config_digest"]
            futures: list[Future[CheckResult | list[CheckResult]]] = [
                pool.submit(_run_command, api, image_id, i, c) for i, c in enumerate(info.commands)]
            if info.files:
                futures.append(pool.submit(_check_files, api, image_id, info.files))
            if info.metadata is not None:
                futures.append(pool.submit(_check_metadata, api, image_id, info.metadata))
            pending.append((label, info, futures))
        results = []
        for label, info, futures in pending:
            checks: list[CheckResult] = []
            for future in futures:
                done = future.result()
                checks += done if isinstance(done, list) else [done]
            image = images[info.image_label].summary
            results.append(TestResult(label=label, image=info.image_label, tag=image["tag"],
                                      image_id=image["config_digest"], checks=tuple(checks)))
    return results


def _run_command(api: Any, image_id: str, index: int, check: Any) -> CheckResult:
    started = time.monotonic()
    argv = [*(check.entrypoint if check.entrypoint is not None else ()), *check.args]
    what = check.name or (shlex.join(argv) if argv else "(the image's entrypoint and cmd)")
    name = f"commands[{index}]"

    def result(passed: bool, message: str) -> CheckResult:
        return CheckResult(name, what, passed, message, time.monotonic() - started)

    kwargs: dict[str, Any] = {"command": list(check.args) or None,
                              "environment": [f"{k}={v}" for k, v in check.env] or None}
    if check.entrypoint is not None:
        kwargs["entrypoint"] = list(check.entrypoint)
    try:
        container = api.create_container(image_id, **kwargs)["Id"]
    except Exception as exc:  # noqa: BLE001 - the SDK raises requests and docker errors alike
        return result(False, f"the engine cannot create the container: {_engine_error(exc)}")
    try:
        timed_out, start_error = False, _start(api, container)
        if start_error is not None:  # as `docker run` has it: the program could not be executed
            return _judge(check, name, what, started, *start_error)
        try:
            status = api.wait(container, timeout=check.timeout)
            code = int(status.get("StatusCode", -1))
        except Exception as exc:  # noqa: BLE001
            if not _is_timeout(exc):
                raise
            timed_out, code = True, -1
            with contextlib.suppress(Exception):  # it may have exited meanwhile
                api.kill(container)
        stdout = api.logs(container, stdout=True, stderr=False).decode("utf-8", "replace")
        stderr = api.logs(container, stdout=False, stderr=True).decode("utf-8", "replace")
    except Exception as exc:  # noqa: BLE001
        return result(False, f"running the container failed: {_engine_error(exc)}")
    finally:
        with contextlib.suppress(Exception):  # a leftover container must not hide the result
            api.remove_container(container, force=True)
    if timed_out:
        return result(False, f"timed out after {check.timeout:g} s; stdout {_excerpt(stdout)}, "
                             f"stderr {_excerpt(stderr)}")
    return _judge(check, name, what, started, code, stdout, stderr)


def _start(api: Any, container: str) -> tuple[int, str, str] | None:
    """Start a container; (exit code, stdout, stderr) as `docker run` reports a program it cannot execute
    (127 not found, 126 not executable), None once started. Other engine failures raise."""
    try:
        api.start(container)
        return None
    except Exception as exc:  # noqa: BLE001
        message = _engine_error(exc)
        if "executable file not found" in message or "no such file or directory" in message:
            return 127, "", message + "\n"
        if "permission denied" in message or "exec format error" in message:
            return 126, "", message + "\n"
        raise


def _judge(check: Any, name: str, what: str, started: float, code: int, stdout: str, stderr: str) -> CheckResult:
    """The result of a command that ran: its exit code and output against what the check expects."""
    problems = []
    if code != check.exit_code:
        problems.append(f"exit code {code}, expected {check.exit_code}")
    for stream, text, pattern in (("stdout", stdout, check.stdout), ("stderr", stderr, check.stderr)):
        if pattern is not None and not _matches(pattern, text):
            expected = "to be empty" if pattern == "" else f"to match `{pattern}`"
            problems.append(f"{stream} {_excerpt(text)} expected {expected}")
    if problems and code != check.exit_code and check.stderr is None and stderr:
        problems.append(f"stderr {_excerpt(stderr)}")
    return CheckResult(name, what, not problems, "; ".join(problems) or f"exit code {code}",
                       time.monotonic() - started)


def _check_files(api: Any, image_id: str, files: Sequence[Any]) -> list[CheckResult]:
    started = time.monotonic()
    try:
        # Never started: any entrypoint will do, and one is needed for an image that has none.
        container = api.create_container(image_id, entrypoint=["/minibuild-test-never-started"])["Id"]
    except Exception as exc:  # noqa: BLE001
        message = f"the engine cannot create a container: {_engine_error(exc)}"
        return [CheckResult(f"files[{i}]", f.path, False, message, time.monotonic() - started)
                for i, f in enumerate(files)]
    try:
        out = []
        accounts: dict[str, dict[str, tuple[int, int]]] = {}  # the image's /etc/passwd and /etc/group, read once
        for i, f in enumerate(files):
            begun = time.monotonic()
            try:
                passed, message = _check_file(api, container, f, accounts)
            except Exception as exc:  # noqa: BLE001
                passed, message = False, f"reading `{f.path}` from the container failed: {_engine_error(exc)}"
            out.append(CheckResult(f"files[{i}]", f.path, passed, message, time.monotonic() - begun))
        return out
    finally:
        with contextlib.suppress(Exception):
            api.remove_container(container, force=True)


def _check_file(api: Any, container: str, check: Any, accounts: dict[str, dict[str, tuple[int, int]]]
                ) -> tuple[bool, str]:
    path, stat, stream = _stat(api, container, check.path)
    if stat is None:
        return (not check.exists), ("absent" if not check.exists else "does not exist")
    if not check.exists:
        return False, "exists, expected not to"
    go_mode = int(stat.get("mode", 0))
    mode = go_mode & 0o777
    for go_bit, bit in _GO_SPECIAL:
        mode |= bit if go_mode & go_bit else 0
    kind = "directory" if go_mode & _GO_DIR else "file"
    via = f" (via the symlink to `{path}`)" if path != check.path else ""
    problems = []
    if check.mode is not None and mode != check.mode:
        problems.append(f"mode {mode:04o}, expected {check.mode:04o}")
    read = check.contains is not None and kind != "directory" and int(stat.get("size", 0)) <= _MAX_CONTENT
    header, data = _first_member(stream, read=read)
    owner = f"{header.uid}:{header.gid}" if header is not None else "?"
    if check.owner is not None:
        if not accounts:
            accounts.update(_image_accounts(api, container))
        expected = _owner_ids(check.owner, accounts)
        if isinstance(expected, str):
            problems.append(expected)
        elif header is None or (header.uid, header.gid) != expected:
            problems.append(f"owner {owner}, expected {expected[0]}:{expected[1]} (`{check.owner}`)")
    if check.contains is not None:
        if kind == "directory":
            problems.append("is a directory, so it has no content to match")
        elif not read:
            problems.append(f"is larger than {_MAX_CONTENT >> 20} MiB; its content is not checked")
        else:
            content = data.decode("utf-8", "replace")
            if not _matches(check.contains, content):
                expected = "to be empty" if check.contains == "" else f"to match `{check.contains}`"
                problems.append(f"content {_excerpt(content)} expected {expected}")
    if problems:
        return False, "; ".join(problems) + via
    return True, f"{kind}, mode {mode:04o}, owner {owner}{via}"


def _stat(api: Any, container: str, path: str) -> tuple[str, dict[str, Any] | None, Any]:
    """The path with symlinks resolved, its stat from the engine (None if absent), and its tar stream.

    The engine resolves symlinks on the way to a path but reports a symlink at its end as a link.
    """
    for _ in range(40):  # as the kernel's limit on nested symlinks
        try:
            stream, stat = api.get_archive(container, path)
        except Exception as exc:  # noqa: BLE001
            if getattr(exc, "status_code", None) == 404 or "404" in str(exc):
                return path, None, None
            raise
        stat = stat or {}
        if not int(stat.get("mode", 0)) & _GO_SYMLINK:
            return path, stat, stream
        target = stat.get("linkTarget", "")
        path = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
        path = "/" + path.lstrip("/")
    return path, None, None


class _Chunks(io.RawIOBase):
    """The engine's archive stream as a file, read only as far as the first member needs (a directory's archive
    holds everything below it)."""

    def __init__(self, chunks: Any) -> None:
        self._chunks, self._pending = iter(chunks), b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            self._pending = next(self._chunks, b"")
            if not self._pending:
                return 0
        n = min(len(buffer), len(self._pending))
        buffer[:n], self._pending = self._pending[:n], self._pending[n:]
        return n


def _first_member(stream: Any, read: bool = True) -> tuple[tarfile.TarInfo | None, bytes]:
    """The header of the archive's first member (the path itself: its owner as the engine has it) and, when
    `read`, its content."""
    if stream is None:
        return None, b""
    with tarfile.open(fileobj=io.BufferedReader(_Chunks(stream)), mode="r|") as tar:
        member = tar.next()
        f = tar.extractfile(member) if member is not None and read else None
        return member, (f.read() if f is not None else b"")


def _image_accounts(api: Any, container: str) -> dict[str, dict[str, tuple[int, int]]]:
    """{"passwd": {name: (uid, gid)}, "group": {name: (gid, gid)}} of the image's own files."""
    out: dict[str, dict[str, tuple[int, int]]] = {"passwd": {}, "group": {}}
    for kind in out:
        _, stat, stream = _stat(api, container, f"/etc/{kind}")
        text = _first_member(stream)[1].decode("utf-8", "replace") if stat is not None else ""
        for line in text.splitlines():
            fields = line.split(":")
            if len(fields) >= 4 and fields[2].isdigit() and (kind == "group" or fields[3].isdigit()):
                out[kind].setdefault(fields[0], (int(fields[2]), int(fields[3] if kind == "passwd" else fields[2])))
    return out


def _owner_ids(owner: str, accounts: dict[str, dict[str, tuple[int, int]]]) -> tuple[int, int] | str:
    """The uid and gid `owner` stands for, as the image rule reads it (`NAME`: the account and its primary group,
    `UID`: UID:UID), names looked up in the image's /etc/passwd and /etc/group; a message when one is not there."""
    user, _, group = owner.partition(":")
    if user.isdigit():
        uid = gid = int(user)
    elif user in accounts["passwd"]:
        uid, gid = accounts["passwd"][user]
    else:
        return f"owner `{user}` is not in the image's /etc/passwd"
    if group.isdigit():
        gid = int(group)
    elif group:
        if group not in accounts["group"]:
            return f"group `{group}` is not in the image's /etc/group"
        gid = accounts["group"][group][0]
    return uid, gid


def _check_metadata(api: Any, image_id: str, check: Any) -> list[CheckResult]:
    started = time.monotonic()
    try:
        config = api.inspect_image(image_id).get("Config") or {}
    except Exception as exc:  # noqa: BLE001
        return [CheckResult("metadata", "", False, f"inspecting the image failed: {_engine_error(exc)}",
                            time.monotonic() - started)]
    env = dict(e.split("=", 1) if "=" in e else (e, "") for e in config.get("Env") or [])
    labels = config.get("Labels") or {}
    out = []

    def add(field: str, passed: bool, message: str) -> None:
        out.append(CheckResult(f"metadata.{field}", "", passed, message, time.monotonic() - started))

    for field, key, expected in (("entrypoint", "Entrypoint", check.entrypoint), ("cmd", "Cmd", check.cmd)):
        if expected is not None:
            actual = list(config.get(key) or [])
            add(field, actual == list(expected),
                json.dumps(actual) + ("" if actual == list(expected) else f", expected {json.dumps(list(expected))}"))
    for field, key, expected in (("user", "User", check.user), ("workdir", "WorkingDir", check.workdir)):
        if expected is not None:
            actual_text = config.get(key) or ""
            add(field, actual_text == expected,
                json.dumps(actual_text) + ("" if actual_text == expected else f", expected {json.dumps(expected)}"))
    for field, actual_map, expected in (("env", env, check.env), ("labels", labels, check.labels)):
        if expected is not None:
            wrong = [f"`{k}` is {'unset' if k not in actual_map else f'`{actual_map[k]}`'}, expected `{v}`"
                     for k, v in expected if actual_map.get(k) != v]
            add(field, not wrong, "; ".join(wrong) or ", ".join(f"{k}={v}" for k, v in expected))
    return out


def _matches(pattern: str, text: str) -> bool:
    """A regex searched line by line (`^`/`$` at line ends); the empty pattern means "empty"."""
    return text == "" if pattern == "" else re.search(pattern, text, re.MULTILINE) is not None


def _excerpt(text: str) -> str:
    if not text:
        return "(empty)"
    shown = text if len(text) <= _EXCERPT else text[:_EXCERPT] + "..."
    return json.dumps(shown, ensure_ascii=False)


def _is_timeout(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}"
    return "Timeout" in text or "timed out" in text


def _engine_error(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    text = str(explanation or exc).strip()
    lines = text.splitlines()
    return (lines[0] if lines else type(exc).__name__)[:300]
