"""/pods/: the caller's pods, optionally those of one job."""

from __future__ import annotations

from fastapi import APIRouter

from .. import service
from ..dependencies import Ctx
from ..hubauth import CurrentUser
from ..models import ErrorOut, KubeList, KubeObject, RefusalOut

router = APIRouter(
    prefix="/pods",
    tags=["pods"],
    responses={
        401: {"model": ErrorOut},
        403: {"model": ErrorOut},
        422: {"model": RefusalOut},
        503: {"model": ErrorOut},
    },
)


@router.get("/", response_model=KubeList)
async def list_pods(ctx: Ctx, user: CurrentUser, job_name: str | None = None) -> dict:
    return await service.list_pods(ctx, user, job_name)


@router.get("/{name}", response_model=KubeObject, responses={404: {"model": ErrorOut}})
async def read_pod(name: str, ctx: Ctx, user: CurrentUser) -> dict:
    return await service.get_pod(ctx, user, name)
