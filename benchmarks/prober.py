"""The rush's prober, in a process of its own: ``GET`` a URL every ``interval`` seconds
and write each answer's latency as a JSON line ``{"t": wall, "s": seconds}`` (or
``{"t": wall, "error": "..."}``) until stdin closes.

In the load generator's process the prober's clock would include that process's own
event-loop lag (1,000 users' logins and progress streams on one loop); on its own, with
one blocking keep-alive connection, it measures the proxy and the hub only. The
parent (``prober_process``) ends it by closing its stdin.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

TIMEOUT = 10.0  # seconds for one answer


def probe_forever(url: str, interval: float, out: Path, stop: threading.Event) -> None:
    """GET ``url`` every ``interval`` s (one connection, kept alive) until ``stop``."""
    parts = urlsplit(url)
    path = parts.path or "/"
    conn: http.client.HTTPConnection | None = None
    with out.open("a", buffering=1) as f:
        while not stop.is_set():
            t0, wall = time.perf_counter(), time.time()
            record: dict[str, Any] = {"t": wall}
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(
                        parts.hostname or "127.0.0.1", parts.port or 80, timeout=TIMEOUT
                    )
                conn.request("GET", path)
                resp = conn.getresponse()
                resp.read()
                if resp.status == 200:
                    record["s"] = time.perf_counter() - t0
                else:
                    record["error"] = f"HTTP {resp.status}"
            except (OSError, http.client.HTTPException) as e:
                record["error"] = type(e).__name__
                if conn is not None:
                    conn.close()
                conn = None
            f.write(json.dumps(record) + "\n")
            stop.wait(max(0.0, interval - (time.perf_counter() - t0)))
    if conn is not None:
        conn.close()


def read_probes(out: Path, since: float, until: float) -> tuple[list[float], list[str]]:
    """Latencies (s) and errors of the probes sent between ``since`` and ``until``."""
    latencies: list[float] = []
    errors: list[str] = []
    try:
        lines = out.read_text().splitlines()
    except OSError:
        return latencies, errors
    for line in lines:
        with contextlib.suppress(ValueError):
            rec = json.loads(line)
            if since <= rec["t"] < until:
                if "s" in rec:
                    latencies.append(rec["s"])
                else:
                    errors.append(rec.get("error", "?"))
    return latencies, errors


@contextlib.contextmanager
def prober_process(url: str, interval: float, out: Path) -> Iterator[Path]:
    """Run the prober in a child process while the block runs; yields its output file."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.prober", url, str(interval), str(out)],
        cwd=Path(__file__).resolve().parents[1],
        stdin=subprocess.PIPE,
    )
    try:
        yield out
    finally:
        assert proc.stdin is not None
        proc.stdin.close()  # the child stops at the end of its stdin
        try:
            proc.wait(TIMEOUT + 5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def main(argv: list[str]) -> None:
    url, interval, out = argv[0], float(argv[1]), Path(argv[2])
    stop = threading.Event()
    worker = threading.Thread(target=probe_forever, args=(url, interval, out, stop))
    worker.start()
    sys.stdin.read()  # until the parent closes it
    stop.set()
    worker.join(TIMEOUT + 1)


if __name__ == "__main__":
    main(sys.argv[1:])
