"""/profiles/: the job profiles (kbatch's format)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from ..dependencies import Ctx
from ..hubauth import current_user
from ..models import ProfileOut


async def list_profiles(ctx: Ctx) -> dict[str, dict]:
    """Profile name -> description, resources, image and placement."""
    return {name: p.public() for name, p in ctx.settings.rules.profiles.items()}


def make_router(public: bool) -> APIRouter:
    """kbatch's client fetches profiles without its token: ``public`` allows that."""
    router = APIRouter(tags=["profiles"])
    router.add_api_route(
        "/profiles/",
        list_profiles,
        methods=["GET"],
        response_model=dict[str, ProfileOut],
        dependencies=[] if public else [Depends(current_user)],
    )
    return router
