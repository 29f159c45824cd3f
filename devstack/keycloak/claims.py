"""The claim layout of the Keycloak stand-in's tokens and admin representations.

Pure functions from realm data to dicts: access, ID, refresh and logout token claims
in Keycloak's names and shapes (``realm_access``, ``resource_access``, ``aud`` with the
audience-mapper clients and ``account``, groups as full paths), and the admin API's
UserRepresentation and user search.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from .model import Client, ClientSession, Realm, User, UserSession


def profile_claims(realm: Realm, user: User) -> dict[str, Any]:
    """The profile, email and groups claims, in Keycloak's names."""
    claims: dict[str, Any] = {"email_verified": user.email_verified}
    if user.full_name:
        claims["name"] = user.full_name
    claims["preferred_username"] = user.username
    if user.first_name:
        claims["given_name"] = user.first_name
    if user.last_name:
        claims["family_name"] = user.last_name
    if user.email:
        claims["email"] = user.email
    if realm.settings.groups_claim and not user.service_account_client:
        claims["groups"] = realm.group_claim(user)
    return claims


def audience(realm: Realm, client: Client, client_roles: dict[str, list[str]]) -> list[str]:
    """Audience mappers' clients, then every other client the user holds roles of."""
    aud: list[str] = []
    for cid in [*client.audiences, *client_roles]:
        if cid != client.client_id and cid not in aud and client_roles.get(cid, True):
            aud.append(cid)
    return aud


def access_claims(
    realm: Realm,
    user: User,
    client: Client,
    session: UserSession,
    csession: ClientSession,
    issuer: str,
    now: float,
    jti: str,
) -> dict[str, Any]:
    settings = realm.settings
    iat = int(now)
    exp = min(
        iat + settings.access_token_lifespan,
        int(session.started + settings.sso_session_max_lifespan),
    )
    realm_roles, client_roles = realm.roles(user)
    claims: dict[str, Any] = {"exp": exp, "iat": iat}
    if not session.service_account:
        claims["auth_time"] = int(session.started)
    claims["jti"] = jti
    claims["iss"] = issuer
    aud = audience(realm, client, client_roles)
    if aud:
        claims["aud"] = aud[0] if len(aud) == 1 else aud
    claims.update(sub=user.id, typ="Bearer", azp=client.client_id)
    if not session.service_account:
        claims["session_state"] = session.id
    claims["acr"] = csession.acr
    claims["realm_access"] = {"roles": realm_roles}
    claims["resource_access"] = {
        cid: {"roles": roles} for cid, roles in client_roles.items() if roles
    }
    claims["scope"] = csession.scope
    claims["sid"] = session.id
    claims.update(profile_claims(realm, user))
    if session.service_account:
        claims["client_id"] = client.client_id
    return claims


def id_claims(
    realm: Realm,
    user: User,
    client: Client,
    session: UserSession,
    csession: ClientSession,
    issuer: str,
    now: float,
    jti: str,
    access_token: str,
) -> dict[str, Any]:
    settings = realm.settings
    iat = int(now)
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    at_hash = base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode("ascii")
    claims: dict[str, Any] = {
        "exp": iat + settings.access_token_lifespan,
        "iat": iat,
        "auth_time": int(session.started),
        "jti": jti,
        "iss": issuer,
        "aud": client.client_id,
        "sub": user.id,
        "typ": "ID",
        "azp": client.client_id,
    }
    if csession.nonce:
        claims["nonce"] = csession.nonce
    claims.update(session_state=session.id, at_hash=at_hash, acr=csession.acr, sid=session.id)
    claims.update(profile_claims(realm, user))
    return claims


def refresh_claims(
    realm: Realm,
    user: User,
    client: Client,
    session: UserSession,
    csession: ClientSession,
    issuer: str,
    now: float,
    jti: str,
) -> dict[str, Any]:
    return {
        "exp": int(session.refresh_expiry(realm.settings)),
        "iat": int(now),
        "jti": jti,
        "iss": issuer,
        "aud": issuer,
        "sub": user.id,
        "typ": "Refresh",
        "azp": client.client_id,
        "session_state": session.id,
        "scope": csession.scope,
        "sid": session.id,
    }


def logout_claims(issuer: str, client_id: str, sub: str, sid: str, now: float, jti: str) -> dict:
    return {
        "iat": int(now),
        "exp": int(now) + 120,
        "jti": jti,
        "iss": issuer,
        "aud": client_id,
        "sub": sub,
        "typ": "Logout",
        "sid": sid,
        "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
    }


def user_representation(user: User, can_manage: bool) -> dict[str, Any]:
    """Keycloak's admin-API UserRepresentation."""
    rep: dict[str, Any] = {"id": user.id, "username": user.username}
    if user.first_name:
        rep["firstName"] = user.first_name
    if user.last_name:
        rep["lastName"] = user.last_name
    if user.email:
        rep["email"] = user.email
    rep.update(
        emailVerified=user.email_verified,
        createdTimestamp=user.created_timestamp,
        enabled=user.enabled,
        totp=False,
        disableableCredentialTypes=[],
        requiredActions=[],
        notBefore=0,
        access={
            "manageGroupMembership": can_manage,
            "view": True,
            "mapRoles": can_manage,
            "impersonate": False,
            "manage": can_manage,
        },
    )
    return rep


def search_users(realm: Realm, query: dict[str, str]) -> list[User]:
    """The admin API's user search: substring matches unless ``exact=true``."""
    exact = query.get("exact", "false").lower() == "true"

    def hit(value: str | None, wanted: str) -> bool:
        value, wanted = (value or "").lower(), wanted.lower()
        return value == wanted if exact else wanted in value

    users = sorted(
        (u for u in realm.users.values() if not u.service_account_client),
        key=lambda u: u.username,
    )
    fields = {
        "username": "username",
        "email": "email",
        "firstName": "first_name",
        "lastName": "last_name",
    }
    for param, attr in fields.items():
        if param in query:
            users = [u for u in users if hit(getattr(u, attr), query[param])]
    if "search" in query:
        term = query["search"].strip("*").lower()
        users = [
            u for u in users if any(term in (getattr(u, a) or "").lower() for a in fields.values())
        ]
    first = int(query.get("first", 0))
    maximum = int(query.get("max", 100))
    return users[first : first + maximum]
