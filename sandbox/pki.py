"""Keys and certificates, generated once per installation and kept in the state folder.

The SDKs refuse bearer tokens over plain HTTP and MSAL accepts only an https authority, so the
sandbox needs real TLS: a local CA the learner's process trusts, a server certificate for
127.0.0.1 and localhost, and an RSA key that signs tokens (published as a JWKS, as Entra ID does).
Nothing here is ever committed; a fresh state folder gets fresh keys.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from pathlib import Path

import certifi
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sandbox.config import StateError

CA_FILE = "ca.pem"
CA_KEY_FILE = "ca-key.pem"
SERVER_CERT_FILE = "server.pem"
SERVER_KEY_FILE = "server-key.pem"
SIGNING_KEY_FILE = "signing-key.pem"
BUNDLE_FILE = "ca-bundle.pem"


FIX = "python -m sandbox reset"


def _new_key() -> rsa.RSAPrivateKey:
    """The token-signing key: RSA, because Entra ID signs with RS256 and the SDKs expect it."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _new_tls_key() -> ec.EllipticCurvePrivateKey:
    """CA and server keys: P-256, which every TLS client accepts and which takes microseconds
    to make where an RSA key takes tens of milliseconds (first start makes two of them)."""
    return ec.generate_private_key(ec.SECP256R1())


def _write_private(path: Path, data: bytes) -> None:
    from sandbox.state import write_atomic

    write_atomic(path, data)


def _key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _make_ca(folder: Path) -> None:
    from cryptography import x509  # only when a certificate is made: a large import
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    key = _new_tls_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ACS tutorial sandbox local CA")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(folder / CA_KEY_FILE, _key_pem(key))
    _write_private(folder / CA_FILE, cert.public_bytes(serialization.Encoding.PEM))


def _make_server_cert(folder: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    try:
        ca_key = serialization.load_pem_private_key((folder / CA_KEY_FILE).read_bytes(), None)
        ca_cert = x509.load_pem_x509_certificate((folder / CA_FILE).read_bytes())
    except ValueError:
        raise StateError(
            f"The local CA ({CA_FILE}, {CA_KEY_FILE}) in {folder} is damaged; make a new one "
            f"with: {FIX}"
        ) from None
    key = _new_tls_key()
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(folder / SERVER_KEY_FILE, _key_pem(key))
    _write_private(folder / SERVER_CERT_FILE, cert.public_bytes(serialization.Encoding.PEM))


def ensure_pki(folder: Path) -> None:
    """Create whatever is missing; existing keys are kept so issued tokens stay verifiable."""
    if not (folder / CA_FILE).exists() or not (folder / CA_KEY_FILE).exists():
        _make_ca(folder)
        (folder / SERVER_CERT_FILE).unlink(missing_ok=True)
    if not (folder / SERVER_CERT_FILE).exists():
        _make_server_cert(folder)
    if not (folder / SIGNING_KEY_FILE).exists():
        _write_private(folder / SIGNING_KEY_FILE, _key_pem(_new_key()))
    # Public roots plus the sandbox CA: trusting the sandbox must not break real Azure hosts.
    bundle = Path(certifi.where()).read_bytes().rstrip(b"\n") + b"\n"
    bundle += (folder / CA_FILE).read_bytes()
    if not (folder / BUNDLE_FILE).exists() or (folder / BUNDLE_FILE).read_bytes() != bundle:
        _write_private(folder / BUNDLE_FILE, bundle)


def load_signing_key(folder: Path) -> rsa.RSAPrivateKey:
    """The token-signing key; a damaged one is a :class:`StateError`, not a traceback."""
    try:
        key = serialization.load_pem_private_key(
            (folder / SIGNING_KEY_FILE).read_bytes(), None, unsafe_skip_rsa_key_validation=True
        )
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise StateError(
            f"The token-signing key {folder / SIGNING_KEY_FILE} is damaged; make a new one "
            f"with: {FIX}"
        )
    return key


def server_context(folder: Path) -> ssl.SSLContext:
    """The HTTPS listener's TLS context; a damaged certificate or key is a :class:`StateError`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(folder / SERVER_CERT_FILE, folder / SERVER_KEY_FILE)
    except (ssl.SSLError, OSError):
        raise StateError(
            f"The server certificate or key ({SERVER_CERT_FILE}, {SERVER_KEY_FILE}) in {folder} "
            f"is damaged; make new ones with: {FIX}"
        ) from None
    return context


def damaged_files(folder: Path) -> list[str]:
    """The key and certificate files that cannot be used (``reset`` sets them aside)."""
    from cryptography import x509

    found = []
    try:
        if (folder / SIGNING_KEY_FILE).exists():
            load_signing_key(folder)
    except StateError:
        found.append(SIGNING_KEY_FILE)
    try:
        serialization.load_pem_private_key((folder / CA_KEY_FILE).read_bytes(), None)
        x509.load_pem_x509_certificate((folder / CA_FILE).read_bytes())
    except (ValueError, TypeError, OSError):
        found += [CA_FILE, CA_KEY_FILE, SERVER_CERT_FILE, SERVER_KEY_FILE]
    else:
        try:
            server_context(folder)
        except StateError:
            found += [SERVER_CERT_FILE, SERVER_KEY_FILE]
    return found
