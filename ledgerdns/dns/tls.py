"""TLS for DNS over TLS and HTTPS: the server context, and a devnet's self-signed pair.

The context is the stdlib's (`ssl.create_default_context` for serving): TLS 1.2 at
least, no compression (RFC 7540 section 9.2), and the ALPN protocols of the face
(``dot`` for RFC 7858, ``h2`` and ``http/1.1`` for RFC 8484).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from chain.errors import ConfigError

DOT_ALPN = ("dot",)
DOH_ALPN = ("h2", "http/1.1")
SELF_SIGNED_DAYS = 825  # the longest validity clients such as Apple's accept


def server_context(cert: Path, key: Path, alpn: Sequence[str]) -> ssl.SSLContext:
    """A server-side TLS context for `cert` (a PEM chain) and its `key`.

    Raises:
        ConfigError: a file is missing or unreadable, or the key does not match.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION
    context.set_alpn_protocols(list(alpn))
    try:
        context.load_cert_chain(certfile=str(cert), keyfile=str(key))
    except FileNotFoundError as exc:
        raise ConfigError(f"TLS: no such file {exc.filename or cert}") from None
    except ssl.SSLError as exc:  # not PEM, or the key is not the certificate's
        raise ConfigError(
            f"TLS: cannot use {cert} with {key}: not a PEM certificate chain and its private "
            f"key (OpenSSL: {exc.reason or exc})"
        ) from None
    except OSError as exc:
        raise ConfigError(f"TLS: cannot read {exc.filename or cert}: {exc.strerror}") from None
    return context


def write_self_signed(
    cert: Path, key: Path, *, names: Sequence[str], now: datetime.datetime
) -> None:
    """Write a new self-signed certificate (P-256) for `names` and its key (mode 0600).

    Args:
        cert, key: where the PEM files go (replaced if present).
        names: host names and IP addresses the certificate is for (the first is its CN).
        now: the start of its validity (it ends `SELF_SIGNED_DAYS` later).
    """
    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    alt: list[x509.GeneralName] = []
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # a client's clock a bit behind
        .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )  # fmt: skip
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False
        )  # what strict verifiers (Python 3.13's default) ask of every certificate
        .sign(private, hashes.SHA256())
    )
    key_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key_pem)
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
