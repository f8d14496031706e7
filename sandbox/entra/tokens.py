"""Signing and checking access tokens.

Tokens are RS256 JWTs signed with the installation's key and published as a JWKS, so a learner
can verify one exactly as a resource server does. Issuing lives with Entra ID; checking is used
by every resource the sandbox serves (Resource Manager, ACS), which is why both sit here.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox import clock

ACCESS_TOKEN_LIFETIME = 5400  # 90 minutes, within what Entra ID issues (60-90 min)
CLOCK_SKEW_LEEWAY = 300  # Entra-protected APIs tolerate five minutes of skew


class InvalidToken(Exception):
    """A bearer token the resource must refuse; ``reason`` is safe to show a learner."""

    def __init__(self, reason: str, code: str = "InvalidAuthenticationToken") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_uint(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def normalize_resource(value: str) -> str:
    """Audience comparison ignores one trailing slash, as ACS and ARM do."""
    return value.rstrip("/").lower()


class TokenService:
    def __init__(self, key: rsa.RSAPrivateKey, authority: str) -> None:
        self._key = key
        self.authority = authority.rstrip("/")
        der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.kid = _b64url(hashlib.sha1(der).digest())

    def issuer(self, tenant_id: str) -> str:
        return f"{self.authority}/{tenant_id}/v2.0"

    def jwks(self) -> dict[str, Any]:
        numbers = self._key.public_key().public_numbers()
        return {
            "keys": [
                {
                    "kty": "RSA",
                    "use": "sig",
                    "alg": "RS256",
                    "kid": self.kid,
                    "n": _b64url_uint(numbers.n),
                    "e": _b64url_uint(numbers.e),
                }
            ]
        }

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.kid})

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
    ) -> tuple[str, int]:
        """An Entra ID access token with the claims Azure puts in one; returns (jwt, exp)."""
        now = int(clock.now())
        claims = {
            "aud": audience,
            "iss": self.issuer(tenant_id),
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "tid": tenant_id,
            "oid": oid,
            "sub": oid,
            "appid": appid,
            "azp": appid,
            "idtyp": idtyp,
            "ver": "2.0",
            "uti": _b64url(uuid.uuid4().bytes),
            **(extra or {}),
        }
        return self.sign(claims), claims["exp"]

    def verify(self, token: str, *, audiences: list[str], tenant_id: str) -> dict[str, Any]:
        """Check signature, issuer, audience and lifetime; raise InvalidToken with the reason."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("The access token is not a well-formed JWT.") from None
        if header.get("kid") != self.kid:
            raise InvalidToken("The access token was not signed by a key this tenant publishes.")
        try:
            claims = jwt.decode(
                token,
                self._key.public_key(),
                algorithms=["RS256"],
                options={"verify_exp": False, "verify_nbf": False, "verify_aud": False},
            )
        except jwt.PyJWTError:
            raise InvalidToken("The access token signature is invalid.") from None
        if claims.get("iss") != self.issuer(tenant_id):
            raise InvalidToken(f"The access token issuer '{claims.get('iss')}' is not trusted.")
        wanted = {normalize_resource(a) for a in audiences}
        if normalize_resource(str(claims.get("aud", ""))) not in wanted:
            raise InvalidToken(
                f"The access token audience '{claims.get('aud')}' is invalid; "
                f"expected '{audiences[0]}'.",
                code="InvalidAuthenticationTokenAudience",
            )
        now = clock.now()
        if claims.get("exp", 0) + CLOCK_SKEW_LEEWAY < now:
            raise InvalidToken("The access token has expired.", code="ExpiredAuthenticationToken")
        if claims.get("nbf", 0) - CLOCK_SKEW_LEEWAY > now:
            raise InvalidToken("The access token is not yet valid.")
        return claims
