"""The README's Performance table from the scenarios' JSON records. Pure."""

from __future__ import annotations

from typing import Any

SKIP = {"scenario", "quick", "cores", "loadavg_1m", "versions", "seconds"}


def flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested figures as ``a.b`` rows; lists of dicts keyed by their first field."""
    if isinstance(value, dict):
        rows: list[tuple[str, Any]] = []
        for key, item in value.items():
            rows += flatten(item, f"{prefix}.{key}" if prefix else str(key))
        return rows
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        rows = []
        for item in value:
            first = next(iter(item))
            label = f"{prefix}[{first}={item[first]}]"
            rows += flatten({k: v for k, v in item.items() if k != first}, label)
        return rows
    return [(prefix, value)]


RUSHES = (
    "morning_rush",
    "morning_rush_plain_kubespawner",
    "morning_rush_jupyterlab",
    "morning_rush_1000",
)


def _pcts(summary: dict[str, Any] | None, points: tuple[str, ...], unit: str = "ms") -> str:
    """``a / b / c`` of a ``summary_ms`` dict, in ms or s. Pure."""
    if not summary or not summary.get("n"):
        return "-"
    scale, fmt = (1000, "{:.1f} s") if unit == "s" else (1, "{:.0f} ms")
    return " / ".join(fmt.format(summary.get(f"{p}_ms", 0) / scale) for p in points)


def rush_rows(rec: dict[str, Any]) -> list[tuple[str, str]]:
    """The figures of one rush record that the README's table shows. Pure."""
    loop = rec.get("hub_event_loop") or {}
    api = rec.get("hub_api_probe") or {}
    cpu = rec.get("cpu_seconds_during_rush") or {}
    failures = "; ".join(
        f"{n} {' '.join(why.split())}" for why, n in (rec.get("failures_by_reason") or {}).items()
    )
    retries = sum((rec.get("login_retries_by_reason") or {}).values())
    apis = rec.get("standins_api_during_rush") or {}
    logins = rec.get("standins_api_during_logins") or {}
    return [
        ("spawner", str(rec.get("spawner", "ValeriaSpawner"))),
        ("single-user server", str(rec.get("singleuser"))),
        ("stand-ins", f"{rec.get('standins')} (load generator: {rec.get('load_generator')})"),
        ("load average at start", str(rec.get("loadavg_1m"))),
        ("ready of users", f"{rec.get('ready')} of {rec.get('users')}"),
        ("failures", failures or "none"),
        ("spawn requests throttled (429) / login retries",
         f"{rec.get('spawn_requests_throttled_429', 0)} / {retries}"),
        ("login p50 / p95 / p99", _pcts(rec.get("login"), ("p50", "p95", "p99"), "s")),
        ("time to ready p50 / p95 / max",
         _pcts(rec.get("time_to_ready"), ("p50", "p95", "max"), "s")),
        ("hub API during the rush p50 / p95 / p99 (baseline p50)",
         f"{_pcts(api, ('p50', 'p95', 'p99'))} ({api.get('baseline_p50_ms', '-')} ms)"),
        ("hub API during the logins p50 / p95 / p99",
         _pcts(rec.get("hub_api_probe_during_logins"), ("p50", "p95", "p99"))),
        ("loop stalls > 50 ms; in our code (largest); largest of all",
         f"{loop.get('stalls_over_50ms', '-')}; {loop.get('stalls_over_50ms_in_our_code', '-')} "
         f"({loop.get('max_stall_in_our_code_ms', '-')} ms); {loop.get('max_stall_ms', '-')} ms"),
        ("stalled time: waiting for a CPU / GC / our code",
         f"{loop.get('stall_ms_total', '-')} ms: {loop.get('of_which_waiting_for_cpu_ms', '-')} / "
         f"{loop.get('of_which_gc_ms', '-')} / {loop.get('of_which_our_code_ms', '-')} ms"),
        ("stand-ins' answers p95: Keycloak token (logins) / pod and Secret creation / "
         "Vault login",
         " / ".join([_pcts(logins.get("keycloak: POST token"), ("p95",))] + [
             _pcts(apis.get(k), ("p95",))
             for k in ("kube: create pods", "kube: create secrets", "vault: POST auth/jwt/login")
         ])),
        ("CPU s during the rush: hub / stand-ins and pods / load generator / others / available",
         " / ".join(str(cpu.get(k, "-")) for k in
                    ("hub", "standins_and_pods", "load_generator", "others", "available"))),
    ]  # fmt: skip


def rush_table(records: list[dict[str, Any]]) -> list[str]:
    """The rushes side by side (empty without rush records). Pure."""
    rushes = [r for name in RUSHES for r in records if r.get("scenario") == name]
    if not rushes:
        return []
    lines = [
        "### morning rushes",
        "",
        "| figure | " + " | ".join(r["scenario"] for r in rushes) + " |",
        "|---|" + "---|" * len(rushes),
    ]
    columns = [
        dict(rush_rows(r)) if "error" not in r else {"": f"error: {r['error']}"} for r in rushes
    ]
    for label, _ in rush_rows({}):
        cells = [c.get(label, c.get("", "-")) for c in columns]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def markdown(records: list[dict[str, Any]]) -> str:
    """The rushes side by side, then one table per scenario, headed by the machine and
    the versions."""
    if not records:
        return "(no results)"
    head = records[0]
    versions = ", ".join(f"{k} {v}" for k, v in head.get("versions", {}).items())
    lines = [f"Measured on {head.get('cores')} cores; {versions}.", "", *rush_table(records)]
    for rec in records:
        lines += [
            f"### {rec['scenario']} ({rec.get('seconds')} s, load {rec.get('loadavg_1m')})",
            "",
            "| figure | value |",
            "|---|---|",
        ]
        figures = {k: v for k, v in rec.items() if k not in SKIP}
        for key, value in flatten(figures):
            lines.append(f"| {key} | {value} |")
        lines.append("")
    return "\n".join(lines)
