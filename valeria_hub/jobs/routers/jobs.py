"""/jobs/: submit, list, show and delete the caller's Jobs."""

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
router = APIRouter(prefix="/jobs", tags=["jobs"], responses=ERRORS)


@router.get("/", response_model=KubeList)
async def list_jobs(request: Request, user: CurrentUser) -> dict:
    return await service.list_owned(request.app.state.ctx, user, "Job")


@router.post(
    "/",
    response_model=KubeObject,
    status_code=201,
    responses={409: {"model": ErrorOut}, 413: {"model": ErrorOut}, 422: {"model": RefusalOut}},
)
async def submit_job(body: SubmitBody, request: Request, user: CurrentUser) -> dict:
    return await service.submit(
        request.app.state.ctx, user, "Job", body.job, body.code, body.profile
    )


@router.get("/{name}", response_model=KubeObject)
async def read_job(name: str, request: Request, user: CurrentUser) -> dict:
    return await service.get_owned(request.app.state.ctx, user, "Job", name)


@router.delete("/{name}", response_model=KubeStatus)
async def delete_job(name: str, request: Request, user: CurrentUser) -> dict:
    return await service.delete_owned(request.app.state.ctx, user, "Job", name)
