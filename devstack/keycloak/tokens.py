"""Signing keys of the Keycloak stand-in: RS256 keys for access/ID/logout tokens, an
HMAC key for refresh tokens and the SSO cookie (as Keycloak does), a JWKS view and
rotation. Verification is strict: unknown ``kid``, wrong algorithm or a bad signature
all raise ``TokenInvalid``; expiry is checked by the caller against its own clock.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa


class TokenInvalid(Exception):
    """A token that is malformed or whose signature does not verify."""


def _b64uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _new_kid() -> str:
    return secrets.token_urlsafe(32)[:43]


@dataclass
class RsaKey:
    """One realm RSA key; ``active`` keys sign, passive ones only verify."""

    kid: str
    private_key: rsa.RSAPrivateKey
    active: bool = True

    def jwk(self) -> dict[str, str]:
        numbers = self.private_key.public_key().public_numbers()
        return {
            "kid": self.kid,
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "n": _b64uint(numbers.n),
            "e": _b64uint(numbers.e),
        }


class KeySet:
    """The realm's keys: a list of RSA keys (newest first) and one HMAC secret."""

    def __init__(self, key_size: int = 2048) -> None:
        self.key_size = key_size
        self.rsa_keys: list[RsaKey] = [self._generate()]
        self.hmac_kid = _new_kid()
        self.hmac_secret = secrets.token_bytes(64)

    def _generate(self) -> RsaKey:
        key = rsa.generate_private_key(public_exponent=65537, key_size=self.key_size)
        return RsaKey(kid=_new_kid(), private_key=key)

    @property
    def active(self) -> RsaKey:
        return next(k for k in self.rsa_keys if k.active)

    def rotate(self, keep_old: bool = True) -> str:
        """Make a new active key; the old ones stay as verify-only keys or are dropped."""
        new = self._generate()
        if keep_old:
            for key in self.rsa_keys:
                key.active = False
            self.rsa_keys.insert(0, new)
        else:
            self.rsa_keys = [new]
        return new.kid

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [k.jwk() for k in self.rsa_keys]}

    def sign(self, claims: dict[str, Any]) -> str:
        key = self.active
        return jwt.encode(
            claims, key.private_key, algorithm="RS256", headers={"kid": key.kid, "typ": "JWT"}
        )

    def sign_hmac(self, claims: dict[str, Any]) -> str:
        return jwt.encode(
            claims,
            self.hmac_secret,
            algorithm="HS512",
            headers={"kid": self.hmac_kid, "typ": "JWT"},
        )

    def decode(self, token: str, *, hmac: bool = False) -> dict[str, Any]:
        """Verify the signature (RS256, or HS512 when ``hmac``) and return the claims."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as e:
            raise TokenInvalid("malformed token") from e
        kid = header.get("kid")
        if hmac:
            if kid != self.hmac_kid:
                raise TokenInvalid("unknown key")
            key: Any = self.hmac_secret
            algorithm = "HS512"
        else:
            match = next((k for k in self.rsa_keys if k.kid == kid), None)
            if match is None:
                raise TokenInvalid("unknown key")
            key = match.private_key.public_key()
            algorithm = "RS256"
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                options={
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "verify_aud": False,
                    "verify_iss": False,
                },
            )
        except jwt.PyJWTError as e:
            raise TokenInvalid("signature verification failed") from e
