"""The user's Keycloak tokens as kept in JupyterHub's encrypted auth_state: one module
writes the layout and reads it.

The authenticator builds auth_state with :func:`auth_state_layout`; the spawner and the
jobs service read the current access token through :func:`access_token` instead of each
parsing it. Layout::

    {"access_token": "...", "refresh_token": "...", "id_token": "...",
     "access_token_expires_at": 1700000000.0, "refresh_token_expires_at": ...,
     "token_response": {...}, "oauth_user": {...claims...}}
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any


def access_token(auth_state: dict[str, Any] | None, *, min_validity: float = 0.0) -> str | None:
    """The access token if it is still valid for ``min_validity`` seconds, else None.

    A token without a recorded expiry is returned as is: Vault checks it anyway.
    """
    if not auth_state:
        return None
    token = auth_state.get("access_token")
    if not token:
        return None
    expires_at = auth_state.get("access_token_expires_at")
    if expires_at is not None and float(expires_at) - time.time() < min_validity:
        return None
    return token


def expires_in(auth_state: dict[str, Any] | None, key: str = "access_token_expires_at") -> float:
    """Seconds until a token expires (negative when expired, -inf when unknown)."""
    if not auth_state or auth_state.get(key) is None:
        return float("-inf")
    return float(auth_state[key]) - time.time()


def access_token_expires_at(auth_state: Mapping[str, Any] | None) -> float | None:
    """When the access token expires (epoch seconds); None when unknown."""
    value = (auth_state or {}).get("access_token_expires_at")
    return None if value is None else float(value)


def lifetime(auth_state: Mapping[str, Any] | None) -> float | None:
    """Seconds the current access token was issued for (Keycloak's access-token lifespan
    as the hub last saw it); None when unknown (auth_state of an older release)."""
    state = auth_state or {}
    expires_at, obtained_at = state.get("access_token_expires_at"), state.get("obtained_at")
    if expires_at is None or obtained_at is None:
        return None
    return float(expires_at) - float(obtained_at)


def expiry(now: float, seconds: Any) -> float | None:
    """Absolute expiry from a relative lifetime; None for missing or 0 (no expiry)."""
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        return None
    return now + value if value > 0 else None


def needs_refresh(auth_state: Mapping[str, Any], margin: float, now: float) -> bool:
    """True when the access token expires within ``margin`` seconds (or has no expiry).

    The margin is capped at half the token's lifetime: with a margin longer than the
    realm's token lifespan every request would otherwise refresh.
    """
    expires_at = auth_state.get("access_token_expires_at")
    if not auth_state.get("access_token") or expires_at is None:
        return True
    obtained_at = auth_state.get("obtained_at")
    if obtained_at is not None:
        margin = min(margin, (float(expires_at) - float(obtained_at)) / 2)
    return float(expires_at) - now <= margin


def access_token_valid(auth_state: Mapping[str, Any], now: float) -> bool:
    """True while the stored access token has not expired."""
    expires_at = auth_state.get("access_token_expires_at")
    return bool(auth_state.get("access_token")) and expires_at is not None and now < expires_at


def refresh_token_usable(auth_state: Mapping[str, Any], now: float) -> bool:
    """True when there is a refresh token that has not expired."""
    if not auth_state.get("refresh_token"):
        return False
    expires_at = auth_state.get("refresh_token_expires_at")
    return expires_at is None or now < float(expires_at)


def _text(value: Any) -> str | None:
    """``value`` if it is a non-empty string: a session or subject id is looked up by."""
    return value if isinstance(value, str) and value else None


def auth_state_layout(
    token_info: Mapping[str, Any], claims: Mapping[str, Any], now: float
) -> dict[str, Any]:
    """The auth_state the spawner and jobs service read ."""
    return {
        "access_token": token_info["access_token"],
        "refresh_token": token_info.get("refresh_token"),
        "id_token": token_info.get("id_token"),
        "access_token_expires_at": expiry(now, token_info.get("expires_in")),
        "refresh_token_expires_at": expiry(now, token_info.get("refresh_expires_in")),
        "scope": str(token_info.get("scope", "")).split(),
        "token_response": dict(token_info),
        "oauth_user": dict(claims),
        "sid": _text(claims.get("sid"))
        or _text(claims.get("session_state"))
        or _text(token_info.get("session_state")),
        "sub": _text(claims.get("sub")),
        "obtained_at": now,
    }


def without_tokens(
    auth_state: Mapping[str, Any] | None, now: float | None = None
) -> dict[str, Any] | None:
    """The auth_state with every token removed: the session is over, the claims stay.

    ``ended_at`` records when, so that tokens obtained before that moment (a refresh
    that was in flight) are never stored again (:func:`keep_ended_session`).
    """
    if auth_state is None:
        return None
    state = dict(auth_state)
    for key in ("access_token", "refresh_token", "id_token", "token_response"):
        state[key] = None
    state["access_token_expires_at"] = state["refresh_token_expires_at"] = None
    state["ended_at"] = time.time() if now is None else now
    return state


def keep_ended_session(
    authenticator: Any, auth_model: Mapping[str, Any], existing: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """JupyterHub's ``reconcile_auth_state_hook``: the auth_state to store after a login
    or refresh. Tokens obtained before the session ended (a logout or back-channel
    logout while a refresh was in flight) are dropped; a new login is newer and wins.

    JupyterHub reads ``existing`` before it saves, so a logout can slip in between: the
    authenticator's own record of when each person's session ended
    (``session_ended_at``, set under the refresh lock) is consulted too.
    """
    new = auth_model.get("auth_state")
    if not new:
        return dict(new) if new is not None else None
    ends = [getattr(authenticator, "session_ended_at", {}).get(auth_model.get("name"))]
    if existing and not existing.get("access_token"):
        ends.append(existing.get("ended_at"))
    ended = max((float(t) for t in ends if t is not None), default=None)
    obtained = new.get("obtained_at")
    if ended is not None and obtained is not None and float(obtained) <= ended:
        return without_tokens(new, now=ended)
    return dict(new)
