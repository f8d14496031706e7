"""Signing and checking access tokens.

Tokens are RS256 JWTs signed with the installation's key and published as a JWKS, so a learner
can verify one exactly as a resource server does. Issuing lives with Entra ID; checking is used
by every resource the sandbox serves (Resource Manager, ACS), which is why both sit here.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import secrets
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from sandbox import clock

# Entra ID gives access tokens a random lifetime of 60-90 minutes (75 on average; entra-docs
# access-tokens.md, "Token lifetime"); a fixed value keeps notebook outputs comparable.
ACCESS_TOKEN_LIFETIME = 4500
# Managed-identity tokens live about 24 hours (a 2025 IMDS capture: ext_expires_in 86399).
MANAGED_IDENTITY_TOKEN_LIFETIME = 86399
CLOCK_SKEW_LEEWAY = 300  # Entra-protected APIs tolerate five minutes of skew
# The issuer of the v1.0 access tokens Entra issues for Resource Manager and Communication
# Services (first-party resources get v1.0 tokens even from the v2.0 endpoint). It is only a
# claim: nothing ever connects to this host; tokens are checked against the sandbox's own key.
V1_ISSUER = "https://sts.windows.net/{tenant}/"
DEFAULT_USER_ROLE = "b79fbf4d-3ef9-4689-8143-76b194e85509"  # "User" directory role template


class InvalidToken(Exception):
    """A bearer token the resource must refuse; ``reason`` is safe to show a learner."""

    def __init__(self, reason: str, code: str = "InvalidAuthenticationToken") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


def _utc_text(epoch: float) -> str:
    """A time as .NET's invariant culture prints it ("11/24/2025 11:31:00 PM"), as ARM's
    messages show times."""
    moment = dt.datetime.fromtimestamp(epoch, dt.timezone.utc)
    hour = moment.hour % 12 or 12
    return (
        f"{moment.month}/{moment.day}/{moment.year} {hour}:{moment:%M:%S} "
        f"{'AM' if moment.hour < 12 else 'PM'}"
    )


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_uint(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def normalize_resource(value: str) -> str:
    """Audience comparison ignores one trailing slash, as ACS and ARM do."""
    return value.rstrip("/").lower()


def _opaque(size: int = 32) -> str:
    """Stand-in for Entra's internal claims (``aio``, ``rh``, ``uti``): opaque to everyone."""
    return _b64url(secrets.token_bytes(size))


def pairwise_subject(oid: str, app_id: str) -> str:
    """A user's ``sub``: stable per user and application, and never equal to ``oid``."""
    return _b64url(hashlib.sha256(f"{oid}:{app_id}".encode()).digest())


def signing_certificate(key: rsa.RSAPrivateKey) -> bytes:
    """A self-signed certificate (DER) for the signing key, as Entra publishes one per key in
    ``x5c``. Every field is fixed and RSA PKCS#1 v1.5 signatures are deterministic, so the same
    key always gives the same certificate, and so the same thumbprint across restarts."""
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ACS tutorial sandbox tokens")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(int.from_bytes(hashlib.sha256(spki).digest()[:8], "big") >> 1)
        .not_valid_before(dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
        .not_valid_after(dt.datetime(2036, 1, 1, tzinfo=dt.timezone.utc))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


class TokenService:
    def __init__(self, key: rsa.RSAPrivateKey, authority: str) -> None:
        self._key = key
        self.authority = authority.rstrip("/")
        self._certificate = signing_certificate(key)
        # Entra's kid is the signing certificate's SHA-1 thumbprint, and equals x5t.
        self.kid = _b64url(hashlib.sha1(self._certificate).digest())

    def issuer(self, tenant_id: str) -> str:
        """The ``iss`` of access tokens (v1.0), and of the v1.0 OpenID document."""
        return V1_ISSUER.format(tenant=tenant_id)

    def v2_issuer(self, tenant_id: str) -> str:
        """The ``iss`` of ID tokens from the v2.0 endpoint, and of the v2.0 OpenID document."""
        return f"{self.authority}/{tenant_id}/v2.0"

    def jwks(self, issuer: str | None = None) -> dict[str, Any]:
        """The signing keys as Entra publishes them: kty, use, kid, x5t, n, e, x5c (no ``alg``),
        plus ``issuer`` on the v2.0 keys endpoint."""
        numbers = self._key.public_key().public_numbers()
        key: dict[str, Any] = {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.kid,
            "n": _b64url_uint(numbers.n),
            "e": _b64url_uint(numbers.e),
            "x5c": [base64.b64encode(self._certificate).decode()],
        }
        if issuer:
            key["issuer"] = issuer
        return {"keys": [key]}

    def sign(self, claims: dict[str, Any]) -> str:
        headers = {"typ": "JWT", "alg": "RS256", "x5t": self.kid, "kid": self.kid}
        return jwt.encode(claims, self._key, algorithm="RS256", headers=headers)

    def access_token(
        self,
        *,
        tenant_id: str,
        audience: str,
        oid: str,
        appid: str,
        idtyp: str,
        extra: dict[str, Any] | None = None,
        lifetime: int = ACCESS_TOKEN_LIFETIME,
        backdate: int = 0,
    ) -> tuple[str, int]:
        """A v1.0 Entra ID access token with the claims Azure puts in one; returns (jwt, exp).

        ``idtyp`` is "app" for app-only tokens (service principals, managed identities); a user
        token carries no ``idtyp`` (Entra emits it only for app-only tokens by default) and a
        pairwise ``sub``. ``backdate`` moves ``iat``/``nbf`` earlier, as Entra does for managed
        identities (their ``exp - iat`` is 86700 s in a 2025 capture, 5 minutes over the life).
        """
        now = int(clock.now())
        user = idtyp != "app"
        claims: dict[str, Any] = {
            "aio": _opaque(),
            "appid": appid,
            "appidacr": "0",
            "oid": oid,
            "rh": "0.A" + _opaque(40),
            "sub": pairwise_subject(oid, appid) if user else oid,
            "tid": tenant_id,
            "uti": _opaque(16),
            "ver": "1.0",
        }
        if not user:  # app-only: Entra names itself as the identity provider
            claims.update(idtyp="app", idp=self.issuer(tenant_id))
        claims.update(extra or {})
        for v2_only in ("azp", "azpacr"):
            claims.pop(v2_only, None)
        head = {
            "aud": audience,
            "iss": self.issuer(tenant_id),
            "iat": now - backdate,
            "nbf": now - backdate,
            "exp": now + lifetime,
        }
        # Entra writes the registered claims first, then the rest in alphabetical order.
        return self.sign({**head, **dict(sorted(claims.items()))}), head["exp"]

    def signed_claims(self, token: str) -> dict[str, Any]:
        """The claims of a JWT signed (RS256) by this key, checking nothing else: callers judge
        the times on the sandbox's clock, which PyJWT's checks (on the machine's) would not.
        Raises PyJWT's errors (InvalidSignatureError for a signature by another key)."""
        return jwt.decode(
            token,
            self._key.public_key(),
            algorithms=["RS256"],
            options={
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "verify_aud": False,
            },  # fmt: skip
        )

    def verify(self, token: str, *, audiences: list[str], tenant_id: str) -> dict[str, Any]:
        """Check signature, issuer, audience and lifetime; raise InvalidToken with the reason.

        Times are judged on the sandbox's clock (``clock.now()``, which the clock_skew fault
        moves) with five minutes of leeway, never on the machine's own clock: the tokens were
        stamped with the sandbox's clock.
        """
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("The access token is not a well-formed JWT.") from None
        if header.get("kid") != self.kid:
            raise InvalidToken("The access token was not signed by a key this tenant publishes.")
        try:
            claims = self.signed_claims(token)
        except jwt.InvalidSignatureError:
            raise InvalidToken("The access token signature is invalid.") from None
        except jwt.PyJWTError:
            raise InvalidToken("The access token is not a well-formed JWT.") from None
        if claims.get("iss") != self.issuer(tenant_id):
            raise InvalidToken(f"The access token issuer '{claims.get('iss')}' is not trusted.")
        wanted = {normalize_resource(a) for a in audiences}
        if normalize_resource(str(claims.get("aud", ""))) not in wanted:
            raise InvalidToken(
                f"The access token audience '{claims.get('aud')}' is invalid; "
                f"expected '{audiences[0]}'.",
                code="InvalidAuthenticationTokenAudience",
            )
        times = [claims.get(name, 0) for name in ("exp", "nbf", "iat")]
        if not all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in times):
            raise InvalidToken("The access token is not a well-formed JWT.")
        exp, nbf, iat = times
        now = clock.now()
        if exp + CLOCK_SKEW_LEEWAY < now:
            # Resource Manager's words, with .NET's invariant date format (issue threads quote it)
            raise InvalidToken(
                f"The access token expiry UTC time '{_utc_text(exp)}' is earlier than current "
                f"UTC time '{_utc_text(now)}'.",
                code="ExpiredAuthenticationToken",
            )
        if max(nbf, iat) - CLOCK_SKEW_LEEWAY > now:
            raise InvalidToken(
                "The access token is not yet valid (its nbf/iat is later than the sandbox's "
                "clock by more than five minutes)."
            )
        return claims
