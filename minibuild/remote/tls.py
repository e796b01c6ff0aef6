"""Which certificates a remote cache's TLS trusts, and a failed handshake in a few words (docs/remote-cache.md#tls).

`ca_file` when the settings name one; otherwise the system's CA bundle, the file OpenSSL reads by default
(`$SSL_CERT_FILE`, else Debian's /usr/lib/ssl/cert.pem, a link to /etc/ssl/certs/ca-certificates.crt), so
that a team's CA installed with `update-ca-certificates` is trusted as it is by curl and git. requests
would use certifi's copy of Mozilla's list and grpcio a list of its own, neither of which has that CA.
"""

from __future__ import annotations

import re
import ssl

from minibuild.remote_cache import RemoteSettings


def trusted_cas(settings: RemoteSettings) -> str | None:
    """The PEM file of the CAs to trust: `ca_file`, else the system's bundle; None when there is neither (then
    the library's own list)."""
    return settings.ca_file or ssl.get_default_verify_paths().cafile


def read_cas(settings: RemoteSettings) -> bytes | None:
    """The PEM bytes of `trusted_cas` (grpcio takes bytes, not a path); OSError when `ca_file` is unreadable."""
    path = trusted_cas(settings)
    if path is None:
        return None
    with open(path, "rb") as f:
        return f.read()


# OpenSSL's and BoringSSL's words for a certificate that was not accepted, and grpcio's for a name mismatch.
_VERIFY = re.compile(r"certificate verify failed: ([^(\n]+?)\.? \(_ssl|CERTIFICATE_VERIFY_FAILED: ([^:\n]+)")
_HOSTNAME = "Hostname Verification Check failed"


def tls_failure(text: str) -> str | None:
    """`certificate verify failed: <why>` when `text` (an exception's, or a gRPC status's details) tells of a
    certificate that was refused, `the handshake failed` for another TLS fault, None when it is not TLS."""
    found = _VERIFY.search(text)
    if found:
        return "certificate verify failed: " + (found.group(1) or found.group(2)).strip()
    if _HOSTNAME in text:
        return "certificate verify failed: the certificate is not for this host"
    if "WRONG_VERSION_NUMBER" in text:
        return "the server does not speak TLS"
    if re.search(r"SSL|TLS|[Hh]andshake", text):
        return "the handshake failed"
    return None
