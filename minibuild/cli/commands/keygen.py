"""`minibuild keygen`: write an ECDSA P-256 key pair for signing images (docs/signing.md)."""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from minibuild.errors import InputError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output-key-prefix", default="minibuild", metavar="PREFIX",
                   help="write PREFIX.key (the private key, encrypted) and PREFIX.pub (default `minibuild`)")
    p.add_argument("--force", action="store_true", help="overwrite PREFIX.key and PREFIX.pub when they exist")


def signing_password(*, confirm: bool) -> bytes:
    """The password from the environment, else asked on the terminal (never echoed); exit 2 when neither."""
    from minibuild.oci.signing import PASSWORD_VARIABLES, password_from_environment

    password = password_from_environment()
    if password is not None:
        return password
    if not sys.stdin.isatty():
        raise InputError("no password for the private key",
                         hint=f"set {PASSWORD_VARIABLES[0]} (or {PASSWORD_VARIABLES[1]}), or run on a terminal")
    typed = getpass.getpass("Password for the private key: ")
    if confirm and getpass.getpass("Again: ") != typed:
        raise InputError("the two passwords differ")
    return typed.encode("utf-8")


def run(args: argparse.Namespace) -> int:
    from minibuild.cli import ui
    from minibuild.oci.signing import generate_key_pair

    private, public = f"{args.output_key_prefix}.key", f"{args.output_key_prefix}.pub"
    existing = [p for p in (private, public) if os.path.exists(p)]
    if existing and not args.force:
        raise InputError(f"`{existing[0]}` exists", hint="pass `--force` to overwrite it, or another "
                         "`--output-key-prefix`")
    pair = generate_key_pair(signing_password(confirm=True))
    for path, data, mode in ((private, pair.private_pem, 0o600), (public, pair.public_pem, 0o644)):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            os.fchmod(fd, mode)  # an existing file keeps its mode through O_CREAT: narrowed before the key is in it
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        except OSError as exc:
            raise InputError(f"cannot write `{path}`: {exc.strerror}") from None
    ui.info(f"private key (encrypted) written to {private}")
    ui.info(f"public key written to {public}")
    return 0
