"""A person's own Keycloak access token, for their notebook: the custom scope that grants
it, the roles that give that scope to the notebook server's token, and the pure rules of
the hub endpoint that hands the token out (``valeria-hub token`` calls it).

Why a scope of its own: the notebook needs its person's token (to log in to Vault, to
call other services) and nothing more. ``admin:auth_state`` would let the server read
every user's tokens; this scope, filtered to the server's own user (``!user``), reaches
one person's access token, and the endpoint serves it only to that person's own tokens.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import state as tokens

KEYCLOAK_TOKEN_SCOPE = "custom:valeria:keycloak-token"
# every person holds it for themselves only; the notebook server's token gets the same
OWN_KEYCLOAK_TOKEN = f"{KEYCLOAK_TOKEN_SCOPE}!user"
CUSTOM_SCOPES: dict[str, dict[str, Any]] = {
    KEYCLOAK_TOKEN_SCOPE: {
        "description": "Get your own Keycloak access token, kept fresh by the hub "
        "(to log in to Vault or call other services from your notebook).",
    }
}

DEFAULT_MIN_VALIDITY = 60.0
MAX_MIN_VALIDITY = 3600.0

LOGIN_MESSAGE = (
    "Your login has ended (you logged out, or your Keycloak session expired): "
    "log in to the hub again, then retry."
)


def with_keycloak_token_scope(
    roles: list[dict[str, Any]], server_defaults: list[str]
) -> list[dict[str, Any]]:
    """``load_roles`` with the person's own-token scope added to the ``user`` role (so
    that each person holds it, for themselves) and to the ``server`` role (so that their
    notebook's ``JUPYTERHUB_API_TOKEN`` gets it). Scopes a role already has are kept;
    ``server_defaults`` (JupyterHub's own ``server`` role) when the list has no such role.
    """
    out = [dict(role) for role in roles]
    for name, defaults in (("user", ["self"]), ("server", list(server_defaults))):
        role = next((r for r in out if r.get("name") == name), None)
        if role is None:
            role = {"name": name, "scopes": defaults}
            out.append(role)
        scopes = list(role.get("scopes", defaults))
        if OWN_KEYCLOAK_TOKEN not in scopes:
            scopes.append(OWN_KEYCLOAK_TOKEN)
        role["scopes"] = scopes
    return out


def parse_min_validity(raw: str | None) -> float:
    """Seconds the token must stay valid, from the query (default 60, 0 to 3600)."""
    if raw is None or raw == "":
        return DEFAULT_MIN_VALIDITY
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0 <= value <= MAX_MIN_VALIDITY:
        raise ValueError(
            f"min_validity must be a number of seconds from 0 to {MAX_MIN_VALIDITY:.0f}"
        )
    return value


class Action(enum.Enum):
    SERVE = "serve"  # the stored token is valid long enough
    REFRESH = "refresh"  # refresh first (through the authenticator's per-user lock)
    LOGIN = "login"  # no tokens: the person must log in again (401)
    TOO_LONG = "too_long"  # no token Keycloak issues would last that long (400)
    UNAVAILABLE = "unavailable"  # a refresh was needed and did not happen (503)


@dataclass(frozen=True)
class Decision:
    action: Action
    remaining: float | None = None  # seconds the stored access token has left
    lifetime: float | None = None  # seconds Keycloak issues access tokens for
    refresh_validity: float = 0.0  # min_validity to hand to the refresh


def decide(
    auth_state: Mapping[str, Any] | None,
    min_validity: float,
    now: float,
    *,
    may_refresh: bool = True,
) -> Decision:
    """What to answer a request for a token valid ``min_validity`` more seconds.

    Refresh only a token in the second half of its life: however often a notebook asks,
    Keycloak sees at most one refresh per person per half token lifetime. Hence the
    bound: more than half the lifetime could only be met by refreshing on every call,
    so it is refused (after one refresh, which notices a realm that now issues longer
    tokens). A token without a recorded expiry is served as it is (Vault checks it).
    """
    state = dict(auth_state or {})
    if not tokens.access_token(state, min_validity=-math.inf):
        return Decision(Action.LOGIN)
    expires_at = tokens.access_token_expires_at(state)
    if expires_at is None:
        return Decision(Action.SERVE)
    remaining = expires_at - now
    life = tokens.lifetime(state)
    half = None if life is None else life / 2
    if remaining < min_validity and may_refresh and (half is None or remaining <= half):
        # under the lock a concurrent call may have refreshed already: asking for at
        # most half the lifetime keeps the refresh from running a second time
        ask = min_validity if half is None else min(min_validity, half)
        return Decision(Action.REFRESH, remaining, life, ask)
    if half is not None and min_validity > half:
        return Decision(Action.TOO_LONG, remaining, life)
    if remaining < min_validity:
        return Decision(Action.UNAVAILABLE, remaining, life)
    return Decision(Action.SERVE, remaining, life)


def refusal(decision: Decision, min_validity: float) -> tuple[int, str]:
    """HTTP status and a message the person can act on, for a decision not to serve."""
    if decision.action is Action.LOGIN:
        return 401, LOGIN_MESSAGE
    if decision.action is Action.TOO_LONG:
        life = decision.lifetime or 0.0
        return 400, (
            f"Keycloak issues access tokens for {life:.0f} s and the hub renews them when "
            f"half of that is left, so it can promise at most {math.floor(life / 2)} s "
            f"(asked for {min_validity:g} s): ask for less, and fetch a new token when "
            "you need one."
        )
    left = max(0.0, decision.remaining or 0.0)
    return 503, (
        "The login service (Keycloak) cannot be reached to renew your token, which is "
        f"valid for {left:.0f} more seconds only: try again in a few minutes, or ask "
        "for less."
    )


def token_answer(auth_state: Mapping[str, Any], now: float) -> dict[str, Any]:
    """The body served: the access token and its expiry, never the refresh or ID token."""
    expires_at = tokens.access_token_expires_at(auth_state)
    return {
        "access_token": tokens.access_token(dict(auth_state), min_validity=-math.inf),
        "access_token_expires_at": expires_at,
        "expires_in": None if expires_at is None else max(0, math.floor(expires_at - now)),
    }


COOKIE_REFUSED = (
    "Send a hub API token (Authorization: token ...): the login cookie is not accepted "
    "here, so that no web page can fetch your Keycloak token."
)


def not_own_token(caller_kind: str, caller_name: str) -> str:
    """Why a token of someone (or something) else is refused."""
    return (
        "A hub token can fetch only the Keycloak token of the user it belongs to; "
        f"this one belongs to the {caller_kind} {caller_name}."
    )


def scope_missing() -> str:
    return (
        f"This token lacks the scope {KEYCLOAK_TOKEN_SCOPE}: use your notebook server's "
        "own token (JUPYTERHUB_API_TOKEN), or make a token that includes this scope."
    )
