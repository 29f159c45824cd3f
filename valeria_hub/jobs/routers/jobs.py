"""/jobs/: submit, list, show and delete the caller's Jobs."""

from .workloads import make_router

router = make_router("Job", "/jobs")
