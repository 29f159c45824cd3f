"""/profiles/: the job profiles (kbatch's format), as far as the caller may use them."""

from __future__ import annotations

from fastapi import APIRouter

from ...restrictions import Membership
from ..dependencies import Ctx
from ..hubauth import CurrentUser
from ..models import ProfileOut


def visible(ctx: Ctx, who: Membership | None) -> dict[str, dict]:
    """Profile name -> description, resources, image and placement, for the profiles
    ``who`` may use (None: nobody known, so only the unrestricted ones)."""
    profiles = ctx.settings.rules.profiles
    return {name: p.public() for name, p in profiles.items() if p.usable_by(who)}


async def list_profiles(ctx: Ctx, user: CurrentUser) -> dict[str, dict]:
    """The caller's profiles: a profile restricted to groups they are not in is not shown
    (submitting with it is refused all the same)."""
    return visible(ctx, Membership.of(user.groups))


async def list_public_profiles(ctx: Ctx) -> dict[str, dict]:
    """Without a token (kbatch's client asks so): the unrestricted profiles only."""
    return visible(ctx, None)


def make_router(public: bool) -> APIRouter:
    """kbatch's client fetches profiles without its token: ``public`` allows that."""
    router = APIRouter(tags=["profiles"])
    router.add_api_route(
        "/profiles/",
        list_public_profiles if public else list_profiles,
        methods=["GET"],
        response_model=dict[str, ProfileOut],
    )
    return router
