"""/cronjobs/: submit, list, show and delete the caller's CronJobs."""

from .workloads import make_router

router = make_router("CronJob", "/cronjobs")
