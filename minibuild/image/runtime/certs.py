"""CA certificates for TLS clients (docs/loader.md#r6).

The Debian layout: one PEM bundle, `/etc/ssl/certs/ca-certificates.crt`, which OpenSSL finds through its
OPENSSLDIR `/usr/lib/ssl` (`cert.pem` and `certs` are symlinks into /etc/ssl), GnuTLS and curl by
their compiled-in path. Each path is copied as it exists in the sysroot, symlink chains verbatim.
"""

from __future__ import annotations

from minibuild.elf.sysroot import Sysroot
from minibuild.errors import InputError
from minibuild.image.runtime.copy import copy_path
from minibuild.image.runtime.model import RuntimePlan

BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# Also taken when present: OpenSSL's default file, directory and configuration.
OPENSSL_PATHS = ("/usr/lib/ssl/cert.pem", "/usr/lib/ssl/certs", "/usr/lib/ssl/openssl.cnf")
# Sonames (prefixes) of the TLS libraries that read the bundle.
TLS_LIBRARIES = ("libssl.so", "libcrypto.so", "libgnutls.so", "libcurl.so", "libcurl-gnutls.so", "libnss3.so")


def tls_users(sonames: set[str]) -> list[str]:
    return sorted(s for s in sonames if s.startswith(TLS_LIBRARIES))


def plan_certs(plan: RuntimePlan, fs: Sysroot, *, want: bool | None, sonames: set[str]) -> None:
    users = tls_users(sonames)
    if want is False or (want is None and not users):
        return
    reason = "CA certificates" + (f" (for {', '.join(users)})" if users else "")
    if copy_path(fs, BUNDLE, reason, plan) is None:
        if want:
            raise InputError(f"`ca_certificates = true` but `{BUNDLE}` is not in sysroot `{fs.root}`",
                             hint="install ca-certificates in the sysroot, or ship a bundle with `files`")
        plan.warnings.append(f"{users[0]} is in the closure but `{BUNDLE}` is not in sysroot `{fs.root}`: "
                             "TLS peers cannot be verified")
        return
    for path in OPENSSL_PATHS:
        copy_path(fs, path, "OpenSSL default paths (OPENSSLDIR)", plan)
