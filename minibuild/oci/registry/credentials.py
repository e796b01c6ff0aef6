"""Registry credentials from the docker CLI's `config.json` (`auths` only; helpers and stores are not run)."""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass
from typing import Any

from minibuild.errors import EngineError
from minibuild.oci.registry.reference import DOCKER_HUB, DOCKER_HUB_API


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def basic(self) -> str:
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii")
        return f"Basic {token}"


def docker_config_path() -> str:
    directory = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return os.path.join(directory, "config.json")


def _auth_key_host(key: str) -> str:
    key = re.sub(r"^[a-z]+://", "", key)
    return key.split("/", 1)[0]


def load_credentials(registry: str) -> tuple[Credentials | None, list[str]]:
    """The credentials `docker login` stored for `registry` in config.json, and warnings to show.

    Only `auths` entries are read (base64 `auth`, or `username` and `password`); credential helpers
    and stores are not run, which is warned about when they might have held the credentials.
    """
    path = docker_config_path()
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None, []
    except OSError as exc:
        raise EngineError(f"cannot read the docker config `{path}`: {exc.strerror or exc}") from None
    try:
        config = json.loads(raw)
        if not isinstance(config, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        raise EngineError(f"the docker config `{path}` is not valid JSON: {exc}",
                          hint="fix or remove it, then `docker login` again") from None
    wanted = {registry, DOCKER_HUB_API} | ({"index.docker.io"} if registry == DOCKER_HUB else set())
    warnings: list[str] = []
    for key, entry in _table(config, "auths", path).items():
        if _auth_key_host(key) not in wanted or not isinstance(entry, dict):
            continue
        if entry.get("auth"):
            try:
                text = _string(entry, "auth", f"auths.{key}", path)
                user, sep, password = base64.b64decode(text, validate=True).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                raise EngineError(f"the `auth` of `{key}` in `{path}` is not base64 of `user:password`",
                                  hint=f"`docker login {registry}` again") from None
            if sep:
                return Credentials(user, password), warnings
        if entry.get("username") and entry.get("password"):
            return Credentials(_string(entry, "username", f"auths.{key}", path),
                               _string(entry, "password", f"auths.{key}", path)), warnings
        if entry.get("identitytoken"):
            warnings.append(f"the identity token for `{key}` in `{path}` is not supported; pushing without it")
    helper = _table(config, "credHelpers", path).get(registry)
    if helper:
        warnings.append(f"credential helper `{helper}` for `{registry}` (in `{path}`) is not supported; "
                        "pushing without credentials")
    elif config.get("credsStore"):
        warnings.append(f"credential store `{config['credsStore']}` (in `{path}`) is not supported; "
                        f"pushing to `{registry}` without credentials")
    return None, warnings


_JSON_TYPES = {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number",
               bool: "true or false", type(None): "null"}


def _table(config: dict[str, Any], name: str, path: str) -> dict[str, Any]:
    """`auths` or `credHelpers`: an object (absent or null: empty); anything else is a clear error."""
    value = config.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise EngineError(f"`{name}` in the docker config `{path}` is {_JSON_TYPES.get(type(value), 'not JSON')}, "
                          "not an object",
                          hint="fix the file (docker writes `{\"auths\": {\"registry\": {...}}}`), or remove it and "
                               "`docker login` again")
    return value


def _string(entry: dict[str, Any], key: str, where: str, path: str) -> str:
    value = entry[key]
    if not isinstance(value, str):
        what = _JSON_TYPES.get(type(value), "not JSON")
        raise EngineError(f"`{where}.{key}` in the docker config `{path}` is {what}, not a string",
                          hint="fix the file, or remove it and `docker login` again")
    return value
