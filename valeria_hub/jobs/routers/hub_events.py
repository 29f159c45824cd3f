"""hub-events/: what the hub tells the service, authorized with the service's own token.

Only the hub and the service know that token (the hub made it for the service it
runs), so nobody else can send these; anyone else gets 403 and nothing changes.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Response
from pydantic import BaseModel, Field

from ..dependencies import Ctx
from ..hubauth import token_from_headers
from ..service import forget_login

router = APIRouter(tags=["hub events"], include_in_schema=False)


class LoginEnded(BaseModel):
    """A person's hub login ended (logout, back-channel logout)."""

    name: str = Field(min_length=1, max_length=255)


@router.post("/hub-events/login-ended", status_code=204)
async def login_ended(
    event: LoginEnded,
    ctx: Ctx,
    authorization: Annotated[str | None, Header()] = None,
) -> Response:
    """Drop what the service keeps about the person's login (their access token and
    Vault profile): their next submission asks the hub, which says to log in again."""
    token = token_from_headers(authorization)
    if token is None or not ctx.hub.is_own_token(token):
        raise HTTPException(403, "only the hub may send this")
    forget_login(ctx, event.name)
    return Response(status_code=204)
