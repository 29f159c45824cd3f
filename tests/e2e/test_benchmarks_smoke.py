"""The benchmarks run and print what they promise (tiny sizes; nothing here is timed).

``python -m benchmarks --quick`` runs every scenario against the stand-ins and a real
hub; the figures' keys are checked, and the figures that are counts rather than times
(one refresh for 50 requests, every rush user ready, users in the database) too.
The pure parts (statistics, log parsing, the README table, the loop-lag monitor)
and the rush's light single-user server are tested directly.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.looplag import LoopLagMonitor, blame, read_records, summarize
from valeria_hub.vault import UserProfile

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # benchmarks/ lives next to the package, not inside it

from benchmarks.common import percentile, summary_ms  # noqa: E402
from benchmarks.report import flatten, markdown  # noqa: E402
from benchmarks.spawn_overhead import parse_timings, plain_settings  # noqa: E402

EXPECTED = {
    "spawn_overhead": {
        "valeria_start_to_ready_p50_ms",
        "valeria_start_to_ready_p95_ms",
        "plain_kubespawner_start_to_ready_p50_ms",
        "plain_kubespawner_start_to_ready_p95_ms",
        "ratio_p50",
        "hub_side_ours_p50_ms",
        "hub_side_vault_p50_ms",
        "hub_side_secret_p50_ms",
        "targets",
    },
    **{
        rush: {
            "singleuser",
            "standins",
            "users",
            "login",
            "ready",
            "failed",
            "failures_by_reason",
            "time_to_ready",
            "hub_api_probe",
            "hub_event_loop",
            "cpu_seconds_during_rush",
            "standins_api_during_rush",
            "targets",
        }
        for rush in (
            "morning_rush",
            "morning_rush_plain_kubespawner",
            "morning_rush_jupyterlab",
            "morning_rush_1000",
        )
    },
    "memory": {"users_in_db", "running_servers", "hub_rss_mb", "jobs_service_rss_mb"},
    "token_refresh": {"concurrent_requests", "token_endpoint_calls", "failures", "session"},
    "jobs": {"log_follow_latency", "submit", "list_show", "kbatch_proxy", "ratios", "targets"},
}


@pytest.mark.timeout(600)
def test_quick_run_prints_every_scenario(tmp_path):
    out = tmp_path / "results.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = {r["scenario"]: r for r in map(json.loads, proc.stdout.splitlines())}
    assert set(records) == set(EXPECTED)
    assert out.read_text().count("\n") == len(EXPECTED)
    for name, keys in EXPECTED.items():
        rec = records[name]
        assert "error" not in rec, rec
        assert keys <= set(rec), (name, keys - set(rec))
        assert rec["cores"] >= 1
        assert {"python", "jupyterhub", "jupyterhub-kubespawner", "oauthenticator"} <= set(
            rec["versions"]
        )
        assert rec["versions"]["valeria-hub"]
    spawn = records["spawn_overhead"]
    assert spawn["hub_side_ours_p50_ms"] > 0 and spawn["hub_side_vault_p50_ms"] > 0
    # four rushes, each on its own stand-ins process: light servers (with ValeriaSpawner,
    # then with plain KubeSpawner, the peer), JupyterLab, light
    for name, spawner, kind, users in (
        ("morning_rush", "ValeriaSpawner", "light", 3),
        ("morning_rush_plain_kubespawner", "plain KubeSpawner", "light", 3),
        ("morning_rush_jupyterlab", "ValeriaSpawner", "jupyterlab", 2),
        ("morning_rush_1000", "ValeriaSpawner", "light", 5),
    ):
        rush = records[name]
        assert (rush["spawner"], rush["singleuser"], rush["standins"]) == (
            spawner,
            kind,
            "own process",
        )
        assert rush["ready"] == rush["users"] == users, rush["failures_by_reason"]
        assert rush["hub_api_probe"]["n"] > 0
        assert rush["standins_api_during_rush"]["kube: create pods"]["n"] >= users
    assert records["memory"]["users_in_db"] == 20
    assert records["memory"]["running_servers"] == 5  # after morning_rush_1000
    assert records["memory"]["hub_rss_mb"] > 0 and records["memory"]["jobs_service_rss_mb"] > 0
    refresh = records["token_refresh"]
    assert refresh["token_endpoint_calls"] == 1 and refresh["failures"] == 0
    assert refresh["session"]["failures"] == 0
    jobs = records["jobs"]
    assert [s["concurrency"] for s in jobs["submit"]] == [1, 10, 50]
    assert all(not s["errors"] for s in jobs["submit"])
    # the peer took the same submissions, alternating, on the same hub and stand-in
    peer = jobs["kbatch_proxy"]
    assert peer["version"] == "0.4.2"
    assert [s["concurrency"] for s in peer["submit"]] == [1, 10, 50]
    assert all(not s["errors"] and s["submitted"] > 0 for s in peer["submit"])
    assert peer["list_own"]["listed_items"] >= 50
    assert set(jobs["ratios"]) >= {"submit_per_second_at_1", "submit_per_second_at_10"}
    assert all(v is not None and v > 0 for v in jobs["ratios"].values())
    # every line came: after the stream attached (timed) or before it (the backlog)
    follow = jobs["log_follow_latency"]
    assert follow["lines"] + follow["backlog_lines"] == 5, follow
    counts = {v["listed_items"] for v in jobs["list_show"].values()}
    assert len(counts) == 1, "other users' jobs leaked into the list"
    # the README table is made from these records
    table = markdown(list(records.values()))
    assert "### jobs" in table and "| token_endpoint_calls | 1 |" in table
    assert "| ready of users | 3 of 3 | 3 of 3 | 2 of 2 | 5 of 5 |" in table
    assert "| spawner | ValeriaSpawner | plain KubeSpawner | ValeriaSpawner |" in table


def test_statistics():
    assert percentile([], 50) == 0.0
    assert percentile([3, 1, 2], 50) == 2
    assert percentile([0, 10], 95) == 9.5
    s = summary_ms([0.001, 0.002, 0.003], (50,))
    assert s == {"n": 3, "p50_ms": 2.0, "max_ms": 3.0}


def test_spawn_timing_lines_are_parsed():
    log = (
        "[I 2026 JupyterHub spawner:362] alice: valeria-hub spawn steps took "
        "ours_ms=12.5 vault_ms=8.0 secret_ms=2.5 other_ms=2.0\n"
        "[I 2026 JupyterHub base:1] User alice took 3.0 seconds to start\n"
    )
    assert parse_timings(log) == [
        {"ours_ms": 12.5, "vault_ms": 8.0, "secret_ms": 2.5, "other_ms": 2.0}
    ]


def test_plain_kubespawner_gets_the_same_identity_and_no_secret_values():
    profile = UserProfile("alice", "e1", 1001, 1001, "AKIA", "very-secret")
    settings = plain_settings(profile, "s3-x")
    assert settings["uid"] == 1001 and settings["pod_security_context"]["runAsUser"] == 1001
    assert settings["environment"]["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "s3-x",
        "key": "AWS_SECRET_ACCESS_KEY",
    }
    assert "very-secret" not in json.dumps(settings)


def test_report_flattens_nested_figures():
    rows = dict(flatten({"a": {"b": 1}, "submit": [{"concurrency": 10, "per_second": 5}]}))
    assert rows == {"a.b": 1, "submit[concurrency=10].per_second": 5}


def test_loop_lag_monitor_sees_a_blocking_call_and_who_made_it(tmp_path):
    path = tmp_path / "lag.jsonl"

    def block_the_loop() -> None:
        time.sleep(0.2)

    async def main() -> None:
        monitor = LoopLagMonitor(path, report_every=0.1)
        monitor.start()
        await asyncio.sleep(0.15)
        block_the_loop()
        await asyncio.sleep(0.15)
        monitor.stop()

    t0 = time.time()
    asyncio.run(main())
    records = read_records(path, since=t0)
    stalls = [r for r in records if r["kind"] == "stall"]
    assert len(stalls) == 1 and stalls[0]["ms"] >= 150
    assert any("block_the_loop" in frame for frame in stalls[0]["stack"])
    summary = summarize(records)
    assert summary["stalls_over_50ms"] == 1 and summary["max_stall_ms"] >= 150
    assert summary["stalls_over_50ms_in_our_code"] == 0  # a test, not valeria_hub


def test_blame_finds_our_innermost_frame():
    frames = [
        "/x/site-packages/tornado/ioloop.py:1 run",
        "/x/valeria_hub/spawner.py:10 _start",
        "/x/site-packages/ssl.py:5 load_verify_locations",
    ]
    assert blame(frames) == "/x/valeria_hub/spawner.py:10 _start"
    assert blame(["/x/valeria_hub/devstack/looplag.py:1 _tick"]) is None


def test_light_server_answers_the_hub_as_jupyterhub_singleuser_does(tmp_path):
    """The rush's pods: the hub's readiness check, the version header, and one
    activity post with the server's token, from the environment the spawner gives."""
    import http.server
    import threading
    import urllib.request

    from benchmarks.light_singleuser import isoformat, settings, split_url
    from devstack.hub import free_port

    assert split_url("http://10.0.0.1:8888/user/a/") == ("http", "10.0.0.1", 8888, "/user/a/")
    env = {"JUPYTERHUB_SERVICE_URL": "http://127.0.0.9:8888/user/a%40b/"}
    assert settings(["--port=9999"], env) == {
        "ip": "127.0.0.9",
        "port": 9999,
        "prefix": "/user/a%40b/",
        "version": "",
    }
    assert isoformat(0.5) == "1970-01-01T00:00:00.500000Z"

    posts: list[tuple[str, str, bytes]] = []

    class Hub(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            posts.append((self.path, self.headers["Authorization"], body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    hub = http.server.HTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=hub.serve_forever, daemon=True).start()
    port = free_port()
    activity = f"http://127.0.0.1:{hub.server_port}/hub/api/users/a%40b/activity"
    proc = subprocess.Popen(
        [sys.executable, "-I", "-S", str(REPO / "benchmarks" / "light_singleuser.py"),
         "--jupyterhub-version=6.1.1"],
        env={
            "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}/user/a%40b/",
            "JUPYTERHUB_ACTIVITY_URL": activity,
            "JUPYTERHUB_API_TOKEN": "the-servers-token",
        },
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/user/a%40b/api", timeout=5
                ) as r:
                    assert r.headers["X-JupyterHub-Version"] == "6.1.1"
                    assert json.loads(r.read()) == {"version": "6.1.1"}
                break
            except OSError:
                assert time.monotonic() < deadline, "the light server did not answer"
                time.sleep(0.1)
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/elsewhere", timeout=5)
        assert e.value.code == 404
        while not posts and time.monotonic() < deadline:
            time.sleep(0.1)
        path, auth, body = posts[0]
        assert (path, auth) == ("/hub/api/users/a%40b/activity", "token the-servers-token")
        sent = json.loads(body)
        assert sent["servers"][""]["last_activity"] == sent["last_activity"]
    finally:
        proc.terminate()
        proc.wait(10)
        hub.shutdown()
