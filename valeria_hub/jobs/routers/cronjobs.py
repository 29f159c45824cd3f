"""/cronjobs/: submit, list, show and delete the caller's CronJobs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from .. import service
from ..hubauth import CurrentUser
from ..models import ErrorOut, KubeList, KubeObject, KubeStatus, RefusalOut, SubmitBody

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut},
    403: {"model": ErrorOut},
    404: {"model": ErrorOut},
    503: {"model": ErrorOut},
}
router = APIRouter(prefix="/cronjobs", tags=["cronjobs"], responses=ERRORS)


@router.get("/", response_model=KubeList)
async def list_cronjobs(request: Request, user: CurrentUser) -> dict:
    return await service.list_owned(request.app.state.ctx, user, "CronJob")


@router.post(
    "/",
    response_model=KubeObject,
    status_code=201,
    responses={409: {"model": ErrorOut}, 413: {"model": ErrorOut}, 422: {"model": RefusalOut}},
)
async def submit_cronjob(body: SubmitBody, request: Request, user: CurrentUser) -> dict:
    return await service.submit(
        request.app.state.ctx, user, "CronJob", body.job, body.code, body.profile
    )


@router.get("/{name}", response_model=KubeObject)
async def read_cronjob(name: str, request: Request, user: CurrentUser) -> dict:
    return await service.get_owned(request.app.state.ctx, user, "CronJob", name)


@router.delete("/{name}", response_model=KubeStatus)
async def delete_cronjob(name: str, request: Request, user: CurrentUser) -> dict:
    return await service.delete_owned(request.app.state.ctx, user, "CronJob", name)
