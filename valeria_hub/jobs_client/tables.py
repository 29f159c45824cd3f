"""Plain-text tables of jobs, cronjobs and pods for ``valeria-hub jobs``. Pure.

The service answers in the Kubernetes Python client's ``to_dict()`` shape (snake_case);
camelCase is read too, so a table never depends on which shape came back.
"""

from __future__ import annotations

import datetime as dt
import shlex
from typing import Any


def _get(obj: dict[str, Any] | None, snake: str) -> Any:
    if not obj:
        return None
    if snake in obj:
        return obj[snake]
    parts = snake.split("_")
    return obj.get(parts[0] + "".join(p.title() for p in parts[1:]))


def parse_time(value: Any) -> dt.datetime | None:
    if not value:
        return None
    if isinstance(value, dt.datetime):
        return value
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def show_time(value: Any, zone: bool = True) -> str:
    """A time in the reader's own zone, named (tables name it once, in the header)."""
    t = parse_time(value)
    if t is None:
        return "-"
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)  # the API's times are UTC
    return t.astimezone().strftime("%Y-%m-%d %H:%M:%S" + (" %Z" if zone else ""))


def zone_name() -> str:
    """The reader's time zone as ``show_time`` names it (e.g. "UTC", "CET")."""
    return dt.datetime.now().astimezone().strftime("%Z")


def job_status(job: dict[str, Any]) -> str:
    status = job.get("status") or {}
    if _get(status, "succeeded"):
        return "Succeeded"
    if _get(status, "failed"):
        return "Failed"
    if _get(status, "active"):
        return "Running"
    return "Pending"


def duration(start: Any, end: Any, now: dt.datetime | None = None) -> str:
    t0 = parse_time(start)
    if t0 is None:
        return "-"
    t1 = parse_time(end) or now
    if t1 is None:
        return "-"
    seconds = max(0, int((t1 - t0).total_seconds()))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = [headers, *rows]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def jobs_table(items: list[dict[str, Any]], now: dt.datetime | None = None) -> str:
    rows = []
    for job in items:
        meta, status = job.get("metadata") or {}, job.get("status") or {}
        start, end = _get(status, "start_time"), _get(status, "completion_time")
        state = job_status(job)
        rows.append(
            [
                meta.get("name", "?"),
                state,
                show_time(_get(meta, "creation_timestamp"), zone=False),
                show_time(start, zone=False),
                show_time(end, zone=False),
                duration(start, end, now if state in ("Running", "Pending") else None),
            ]
        )
    z = zone_name()
    headers = ["NAME", "STATUS", f"SUBMITTED ({z})", f"STARTED ({z})", f"FINISHED ({z})"]
    return table([*headers, "DURATION"], rows)


def cronjobs_table(items: list[dict[str, Any]]) -> str:
    rows = []
    for cj in items:
        meta, spec, status = cj.get("metadata") or {}, cj.get("spec") or {}, cj.get("status") or {}
        rows.append(
            [
                meta.get("name", "?"),
                str(spec.get("schedule", "-")),
                "yes" if spec.get("suspend") else "no",
                str(len(status.get("active") or [])),
                show_time(_get(status, "last_schedule_time"), zone=False),
                show_time(_get(meta, "creation_timestamp"), zone=False),
            ]
        )
    z = zone_name()
    headers = ["NAME", "SCHEDULE", "SUSPENDED", "ACTIVE", f"LAST RUN ({z})", f"CREATED ({z})"]
    return table(headers, rows)


def pods_table(items: list[dict[str, Any]]) -> str:
    rows = [
        [
            (p.get("metadata") or {}).get("name", "?"),
            str((p.get("status") or {}).get("phase") or "-"),
            show_time(_get(p.get("status"), "start_time"), zone=False),
        ]
        for p in items
    ]
    return table(["POD", "PHASE", f"STARTED ({zone_name()})"], rows)


def events_table(items: list[dict[str, Any]]) -> str:
    """``events NAME``: oldest first, as the service sends them; the message last and
    whole (it is what explains a failure)."""
    rows = []
    for e in items:
        about = _get(e, "involved_object") or {}
        when = _get(e, "last_timestamp") or _get(e, "event_time") or _get(e, "first_timestamp")
        count = e.get("count") or 1
        rows.append(
            [
                show_time(when, zone=False),
                str(e.get("type") or "-"),
                str(e.get("reason") or "-"),
                f"{about.get('kind', '?')}/{about.get('name', '?')}",
                str(count),
                " ".join(str(e.get("message") or "").split()),
            ]
        )
    headers = [f"LAST SEEN ({zone_name()})", "TYPE", "REASON", "OBJECT", "COUNT", "MESSAGE"]
    return table(headers, rows)


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj.get("spec") or {}
    template = _get(spec, "job_template")
    if template:
        spec = template.get("spec") or {}
    return ((spec.get("template") or {}).get("spec") or {}).get("containers") or []


def details(obj: dict[str, Any], pods: list[dict[str, Any]] | None = None) -> str:
    """``show NAME``: one field a line."""
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    lines = [("Name", meta.get("name", "?")), ("Namespace", meta.get("namespace", "-"))]
    if obj.get("kind") == "CronJob" or _get(obj.get("spec"), "job_template"):
        spec = obj.get("spec") or {}
        lines += [
            ("Schedule", str(spec.get("schedule", "-"))),
            ("Suspended", "yes" if spec.get("suspend") else "no"),
            ("Last run", show_time(_get(status, "last_schedule_time"))),
        ]
    else:
        lines += [
            ("Status", job_status(obj)),
            ("Started", show_time(_get(status, "start_time"))),
            ("Finished", show_time(_get(status, "completion_time"))),
        ]
    lines.append(("Submitted", show_time(_get(meta, "creation_timestamp"))))
    for c in _containers(obj):
        lines.append(("Image", str(c.get("image", "-"))))
        command = (c.get("command") or []) + (c.get("args") or [])
        lines.append(("Command", shlex.join(command) or "(image default)"))  # as typed
        break
    for p in pods or []:
        pm = p.get("metadata") or {}
        lines.append(("Pod", f"{pm.get('name', '?')} ({(p.get('status') or {}).get('phase')})"))
    width = max(len(k) for k, _ in lines) + 1
    return "\n".join(f"{k + ':':<{width}} {v}" for k, v in lines)
