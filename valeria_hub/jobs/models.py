"""Request and response bodies (pydantic), kbatch-compatible.

Kubernetes objects are returned in the Python client's ``to_dict()`` shape
(snake_case keys such as ``creation_timestamp``), which the kbatch client reads.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class SubmitBody(BaseModel):
    """POST /jobs/ and /cronjobs/: the job spec, optional code, optional profile name."""

    model_config = ConfigDict(extra="forbid")

    job: dict[str, Any] = Field(
        description="A batch/v1 Job (or CronJob) in camelCase JSON or the Python "
        "client's snake_case to_dict() shape; checked against the service's allow-list."
    )
    code: str | dict[str, Any] | None = Field(
        None,
        description="A zip archive, base64-encoded, or kbatch's ConfigMap dict with "
        "binary_data.code; unpacked into the working directory.",
    )
    profile: str | None = Field(None, description="A profile name from GET /profiles/.")


class KubeObject(BaseModel):
    """A Job, CronJob or Pod as the Python client's to_dict() gives it."""

    model_config = ConfigDict(extra="allow")

    api_version: str | None = None
    kind: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: dict[str, Any] | None = None
    status: dict[str, Any] | None = None


class KubeList(BaseModel):
    """A JobList, CronJobList or PodList, only the caller's items."""

    model_config = ConfigDict(extra="allow")

    api_version: str | None = None
    kind: str | None = None
    items: list[KubeObject] = Field(default_factory=list)
    metadata: dict[str, Any] | None = None


class KubeEvent(BaseModel):
    """A core/v1 Event as the Python client's to_dict() gives it (snake_case)."""

    model_config = ConfigDict(extra="allow")

    type: str | None = Field(None, description="Normal or Warning")
    reason: str | None = Field(None, description="e.g. SuccessfulCreate, Started, Failed")
    message: str | None = None
    count: int | None = None
    first_timestamp: str | None = None
    last_timestamp: str | None = None
    event_time: str | None = None
    involved_object: dict[str, Any] = Field(
        default_factory=dict, description="the Job, CronJob or Pod it is about"
    )
    metadata: dict[str, Any] = Field(default_factory=dict)


class KubeEventList(BaseModel):
    """GET /jobs/NAME/events and /cronjobs/NAME/events: the workload's events (a Job's
    with its pods'), oldest first."""

    model_config = ConfigDict(extra="allow")

    api_version: str | None = None
    kind: str | None = None
    items: list[KubeEvent] = Field(default_factory=list)


class KubeStatus(BaseModel):
    """The V1Status the API server answers a delete with."""

    model_config = ConfigDict(extra="allow")


class ServiceInfo(BaseModel):
    message: str = "kbatch"
    service: str
    version: str


class UserOut(BaseModel):
    name: str
    groups: list[str]


class ProfileOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    description: str = ""
    resources: dict[str, dict[str, str]] = Field(default_factory=dict)
    image: str | None = None


class ErrorOut(BaseModel):
    detail: str


class RefusalOut(BaseModel):
    """422: a policy refusal (a message naming the field) or a malformed body (a list)."""

    detail: str | list[dict[str, Any]]
