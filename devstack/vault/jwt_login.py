"""JWT validation the way Vault's jwt auth method does it.

``validate_jwt`` is pure: signature against a key set, then the claim checks of
HashiCorp's ``cap/jwt`` validator in the same order and with the same messages and
default leeways (150 s for a missing exp/nbf, 60 s clock skew). The key sources
(OIDC discovery, JWKS URL, PEM keys) are fetched at the edges with aiohttp and a
timeout.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from cryptography.x509 import load_pem_x509_certificate

DEFAULT_LEEWAY = 150
DEFAULT_CLOCK_SKEW = 60
SUPPORTED_ALGS = (
    "RS256",
    "RS384",
    "RS512",
    "ES256",
    "ES384",
    "ES512",
    "PS256",
    "PS384",
    "PS512",
    "EdDSA",
)
FETCH_TIMEOUT = aiohttp.ClientTimeout(total=10)


class JwtError(ValueError):
    """Validation failed; the message is Vault's (never contains the token)."""


@dataclass
class Expected:
    issuer: str = ""
    subject: str = ""
    audiences: list[str] = field(default_factory=list)
    algorithms: list[str] = field(default_factory=list)
    not_before_leeway: int = 0
    expiration_leeway: int = 0
    clock_skew_leeway: int = 0


@dataclass
class KeySet:
    """Public keys (with their ``kid`` when known) and where they came from."""

    keys: list[tuple[str | None, Any]]
    static: bool = False


def _leeway(value: int, default: int) -> int:
    if value < 0:
        return 0
    return value or default


def _verify_signature(token: str, keyset: KeySet) -> tuple[dict, dict]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.DecodeError:
        raise JwtError(
            "error verifying token signature: oidc: malformed jwt: "
            "compact JWS format must have three parts"
        ) from None
    alg = header.get("alg", "")
    kid = header.get("kid")
    for key_kid, key in keyset.keys:
        if kid and key_kid and kid != key_kid and not keyset.static:
            continue
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[alg] if alg in SUPPORTED_ALGS else [],
                options={
                    "verify_signature": True,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                    "verify_iss": False,
                },
            )
        except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError, jwt.DecodeError):
            continue
        except jwt.PyJWTError:
            continue
        return header, claims
    reason = (
        "no known key successfully validated the token signature"
        if keyset.static
        else "failed to verify id token signature"
    )
    raise JwtError(f"error verifying token signature: {reason}")


def validate_jwt(token: str, keyset: KeySet, expected: Expected, now: float) -> dict[str, Any]:
    """Return the token's claims, or raise JwtError with Vault's wording."""
    header, claims = _verify_signature(token, keyset)
    algs = expected.algorithms or list(SUPPORTED_ALGS)
    if header.get("alg") not in algs:
        raise JwtError(
            "invalid algorithm (alg) header parameter: token signed with unexpected algorithm"
        )
    if expected.issuer and claims.get("iss") != expected.issuer:
        raise JwtError("invalid issuer (iss) claim")
    if expected.subject and claims.get("sub") != expected.subject:
        raise JwtError("invalid subject (sub) claim")
    if expected.audiences:
        aud = claims.get("aud")
        auds = [aud] if isinstance(aud, str) else list(aud or [])
        if not any(a in auds for a in expected.audiences):
            raise JwtError(
                "invalid audience (aud) claim: audience claim does not match any expected audience"
            )
    iat = _num(claims.get("iat"))
    exp = _num(claims.get("exp"))
    nbf = _num(claims.get("nbf"))
    if not iat and not exp and not nbf:
        raise JwtError(
            "no issued at (iat), not before (nbf), or expiration time (exp) claims in token"
        )
    if not exp:
        exp = max(iat, nbf) + _leeway(expected.expiration_leeway, DEFAULT_LEEWAY)
    if not nbf:
        nbf = iat if iat else exp - _leeway(expected.not_before_leeway, DEFAULT_LEEWAY)
    skew = _leeway(expected.clock_skew_leeway, DEFAULT_CLOCK_SKEW)
    if now + skew < nbf:
        raise JwtError("invalid not before (nbf) claim: token not yet valid")
    if now - skew > exp:
        raise JwtError("invalid expiration time (exp) claim: token is expired")
    if iat and now + skew < iat:
        raise JwtError("invalid issued at (iat) claim: token issued in the future")
    return claims


def _num(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return float(value)


def validate_bound_claims(
    bound: Mapping[str, Any], claims: Mapping[str, Any], claims_type: str = "string"
) -> None:
    """Vault's bound_claims check: every bound claim must match one allowed value."""
    for name, allowed in bound.items():
        value = _claim(claims, name)
        if value is None:
            raise JwtError(f'claim "{name}" is missing')
        allowed_list = allowed if isinstance(allowed, list) else [allowed]
        actual = value if isinstance(value, list) else [value]
        ok = any(
            (fnmatch.fnmatchcase(str(a), str(p)) if claims_type == "glob" else str(a) == str(p))
            for a in actual
            for p in allowed_list
        )
        if not ok:
            raise JwtError(f'claim "{name}" does not match any associated bound claim values')


def _claim(claims: Mapping[str, Any], name: str) -> Any:
    """A claim by name or JSON pointer (``/a/b``)."""
    if not name.startswith("/"):
        return claims.get(name)
    cur: Any = claims
    for part in name.strip("/").split("/"):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    return cur


def claim(claims: Mapping[str, Any], name: str) -> Any:
    """Public twin of ``_claim`` for claim mappings and user claims."""
    return _claim(claims, name)


# ------------------------------------------------------------------- key sources
def parse_pem_keys(pems: list[str]) -> KeySet:
    """PEM public keys or certificates, as jwt_validation_pubkeys accepts them."""
    keys: list[tuple[str | None, Any]] = []
    for pem in pems:
        data = pem.encode()
        try:
            keys.append((None, load_pem_public_key(data)))
        except ValueError:
            try:
                keys.append((None, load_pem_x509_certificate(data).public_key()))
            except ValueError:
                raise JwtError("data does not contain any valid RSA or ECDSA public keys") from None
    return KeySet(keys, static=True)


def parse_jwks(doc: Any) -> KeySet:
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise JwtError("oidc: failed to decode keys")
    keys: list[tuple[str | None, Any]] = []
    for jwk in doc["keys"]:
        try:
            keys.append((jwk.get("kid"), jwt.PyJWK(jwk).key))
        except (jwt.PyJWKError, jwt.InvalidKeyError, KeyError, TypeError, ValueError):
            continue
    return KeySet(keys)


async def _get_json(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url) as resp:
        body = await resp.text()
        if resp.status != 200:
            raise JwtError(f"{resp.status} {resp.reason}: {body[:200]}")
        try:
            return json.loads(body)
        except ValueError:
            ct = resp.headers.get("Content-Type", "")
            raise JwtError(f'expected Content-Type = application/json, got "{ct}"') from None


async def discover(discovery_url: str) -> str:
    """Fetch the discovery document; return its jwks_uri. Issuer must match exactly."""
    well_known = discovery_url.rstrip("/") + "/.well-known/openid-configuration"
    try:
        async with aiohttp.ClientSession(timeout=FETCH_TIMEOUT) as session:
            doc = await _get_json(session, well_known)
    except (aiohttp.ClientError, TimeoutError) as e:
        raise JwtError(f'Get "{well_known}": {type(e).__name__}') from None
    if not isinstance(doc, dict):
        raise JwtError("failed to decode OIDC discovery document")
    issuer = doc.get("issuer")
    if issuer != discovery_url:
        raise JwtError(
            f'issuer did not match the returned issuer, expected "{discovery_url}" got "{issuer}"'
        )
    jwks_uri = doc.get("jwks_uri")
    if not isinstance(jwks_uri, str) or not jwks_uri:
        raise JwtError("failed to decode OIDC discovery document: missing jwks_uri")
    return jwks_uri


async def fetch_jwks(jwks_url: str) -> KeySet:
    try:
        async with aiohttp.ClientSession(timeout=FETCH_TIMEOUT) as session:
            doc = await _get_json(session, jwks_url)
    except (aiohttp.ClientError, TimeoutError) as e:
        raise JwtError(f"fetching keys oidc: get keys failed: {type(e).__name__}") from None
    return parse_jwks(doc)


def header_kid(token: str) -> str | None:
    try:
        return jwt.get_unverified_header(token).get("kid")
    except jwt.DecodeError:
        return None
