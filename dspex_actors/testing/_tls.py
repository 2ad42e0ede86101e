"""Self-signed TLS certificates for local test servers, made with the ``openssl`` command.

A test serving HTTPS needs a certificate its client can be told to trust (the
certificate is its own CA file); making one per test run keeps private keys out of the
repository. A missing ``openssl`` raises, so a TLS test fails instead of being skipped.
"""

from __future__ import annotations

import ipaddress
import shutil
import ssl
import subprocess
from pathlib import Path

__all__ = ["self_signed_certificate", "server_ssl_context"]

_OPENSSL_TIMEOUT = 60.0


def self_signed_certificate(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """Write ``cert.pem`` and ``key.pem`` (RSA 2048, valid one day) for ``host`` into ``directory``.

    The certificate names ``host`` as its common name and subject alternative name (an
    IP address or a DNS name), so a client connecting to ``host`` with the certificate as
    its CA verifies it. Returns ``(cert, key)``; existing files are overwritten.
    RuntimeError when ``openssl`` is not installed or fails.
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError(
            "the 'openssl' command is not installed (it makes the test TLS certificate); "
            "install OpenSSL"
        )
    try:
        ipaddress.ip_address(host)
    except ValueError:
        alt_name = f"DNS:{host}"
    else:
        alt_name = f"IP:{host}"
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    command = [
        openssl,
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        f"/CN={host}",
        "-addext",
        f"subjectAltName={alt_name}",
        "-keyout",
        str(key),
        "-out",
        str(cert),
    ]
    try:
        subprocess.run(
            command, capture_output=True, text=True, check=True, timeout=_OPENSSL_TIMEOUT
        )
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(
            f"openssl failed to make a certificate (exit {exc.returncode}): {exc.stderr.strip()}"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"openssl did not finish within {_OPENSSL_TIMEOUT:g}s") from exc
    return cert, key


def server_ssl_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server-side TLS context (TLS 1.2 or later) presenting ``cert`` with ``key``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context
