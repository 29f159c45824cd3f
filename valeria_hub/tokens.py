"""The user's Keycloak tokens as kept in JupyterHub's encrypted auth_state.

The authenticator writes auth_state; the spawner and the jobs service read the
current access token through :func:`access_token` instead of each parsing it.
Layout (keys written by KeycloakAuthenticator)::

    {"access_token": "...", "refresh_token": "...", "id_token": "...",
     "access_token_expires_at": 1700000000.0, "refresh_token_expires_at": ...,
     "token_response": {...}, "oauth_user": {...claims...}}
"""

from __future__ import annotations

import time
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
