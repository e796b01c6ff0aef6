"""Registry credentials from the docker CLI's `config.json` (`auths` only; helpers and stores are not run)."""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass

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
    for key, entry in (config.get("auths") or {}).items():
        if _auth_key_host(key) not in wanted or not isinstance(entry, dict):
            continue
        if entry.get("auth"):
            try:
                user, sep, password = base64.b64decode(entry["auth"], validate=True).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                raise EngineError(f"the `auth` of `{key}` in `{path}` is not base64 of `user:password`",
                                  hint=f"`docker login {registry}` again") from None
            if sep:
                return Credentials(user, password), warnings
        if entry.get("username") and entry.get("password"):
            return Credentials(entry["username"], entry["password"]), warnings
        if entry.get("identitytoken"):
            warnings.append(f"the identity token for `{key}` in `{path}` is not supported; pushing without it")
    helper = (config.get("credHelpers") or {}).get(registry)
    if helper:
        warnings.append(f"credential helper `{helper}` for `{registry}` (in `{path}`) is not supported; "
                        "pushing without credentials")
    elif config.get("credsStore"):
        warnings.append(f"credential store `{config['credsStore']}` (in `{path}`) is not supported; "
                        f"pushing to `{registry}` without credentials")
    return None, warnings
