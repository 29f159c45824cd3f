"""Prometheus metrics of valeria-hub.

They live in prometheus_client's default registry, so the hub exposes them with its
own at ``/hub/metrics`` and the jobs service at ``/services/jobs/metrics``. Labels
carry outcomes and reasons only, never user names (unbounded, and personal data).
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

VAULT_LOOKUP = Histogram(
    "valeria_vault_lookup_duration_seconds",
    "Time to log in to Vault as a user and read their uid and S3 keys, by result",
    ["result"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
TOKEN_REFRESH = Counter(
    "valeria_token_refresh_total",
    "Keycloak token refreshes by result (refreshed, rejected, invalid, unavailable_kept, "
    "unavailable_expired)",
    ["result"],
)
SPAWN_FAILURES = Counter(
    "valeria_spawn_failures_total",
    "Notebook spawns that failed, by reason (not_provisioned, unavailable, ...)",
    ["reason"],
)
JOB_SUBMISSIONS = Counter(
    "valeria_job_submissions_total",
    "Batch job submissions by kind and result (created, refused, unavailable, error)",
    ["kind", "result"],
)


def submission_result(status: int) -> str:
    """A submission's HTTP status as a metric label."""
    if status < 300:
        return "created"
    if status >= 500:
        return "unavailable"
    return "refused"
