"""Event-loop lag monitor for the benchmarks: how late a process's asyncio loop runs
a short timer, and what the loop was executing when it stalled.

A tick task sleeps ``interval`` seconds in a loop and records how late it woke (the
lag). A watchdog thread notices a heartbeat older than ``stall`` seconds and takes the
loop thread's stack at that moment, so a stall can be blamed on the code that held
the loop (ours, ``valeria_hub``, or someone else's). Everything is appended as JSON
lines to a file: one ``{"kind": "window"}`` record per ``report_every`` seconds with
the largest lag seen, and one ``{"kind": "stall"}`` record per stall.

Started from a hub configuration file (see ``benchmarks/hub_config.py``): JupyterHub
loads its configuration inside its running loop.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

OUR_PACKAGE = "valeria_hub"


def frame_summary(stack: traceback.StackSummary, limit: int = 40) -> list[str]:
    """The innermost frames as ``file:line function`` strings. Pure."""
    return [f"{f.filename}:{f.lineno} {f.name}" for f in list(stack)[-limit:]]


def blame(frames: list[str], package: str = OUR_PACKAGE) -> str | None:
    """The innermost frame inside ``package`` (not this monitor), or None. Pure."""
    for line in reversed(frames):
        path = line.split(":", 1)[0].replace("\\", "/")
        if f"/{package}/" in path and not path.endswith("/looplag.py"):
            return line
    return None


class LoopLagMonitor:
    """Measure the running loop's lag; write windows and stalls to ``path``."""

    def __init__(
        self,
        path: str | Path,
        *,
        interval: float = 0.01,
        stall: float = 0.05,
        report_every: float = 1.0,
    ) -> None:
        self.path = Path(path)
        self.interval = interval
        self.stall = stall
        self.report_every = report_every
        self._beat = time.perf_counter()
        self._beat_id = 0
        self._captured: tuple[int, list[str]] | None = None
        self._loop_thread: int | None = None
        self._stop = threading.Event()
        self._task: asyncio.Task | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start on the running loop (call from inside it)."""
        loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._beat = time.perf_counter()
        self._task = loop.create_task(self._tick())
        threading.Thread(target=self._watch, name="looplag-watchdog", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()

    def _write(self, record: dict[str, Any]) -> None:
        with self._lock, self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    async def _tick(self) -> None:
        window_start = time.perf_counter()
        worst, samples = 0.0, 0
        while not self._stop.is_set():
            before = time.perf_counter()
            await asyncio.sleep(self.interval)
            now = time.perf_counter()
            lag = max(0.0, now - before - self.interval)
            self._beat, self._beat_id = now, self._beat_id + 1
            worst, samples = max(worst, lag), samples + 1
            if lag >= self.stall:
                captured, self._captured = self._captured, None
                frames = captured[1] if captured else []
                self._write(
                    {
                        "kind": "stall",
                        "t": time.time(),
                        "ms": round(lag * 1000, 1),
                        "ours": blame(frames),
                        "stack": frames,
                    }
                )
            if now - window_start >= self.report_every:
                self._write(
                    {"kind": "window", "t": time.time(), "max_ms": round(worst * 1000, 2),
                     "samples": samples}
                )  # fmt: skip
                window_start, worst, samples = now, 0.0, 0

    def _watch(self) -> None:
        """Take the loop thread's stack once per stall, while it is still stalled."""
        while not self._stop.wait(self.interval / 2):
            beat_id = self._beat_id
            if time.perf_counter() - self._beat < self.stall + self.interval:
                continue
            if self._captured is not None and self._captured[0] == beat_id:
                continue
            frame = sys._current_frames().get(self._loop_thread or 0)
            if frame is None:
                continue
            self._captured = (beat_id, frame_summary(traceback.extract_stack(frame)))


def read_records(path: str | Path, since: float = 0.0, until: float | None = None) -> list[dict]:
    """The monitor's records written between ``since`` and ``until`` (wall time)."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("t", 0) >= since and (until is None or rec["t"] <= until):
            out.append(rec)
    return out


def summarize(records: list[dict], threshold_ms: float = 50.0) -> dict[str, Any]:
    """Largest lag, stalls over the threshold, and those blamed on our code. Pure."""
    windows = [r for r in records if r.get("kind") == "window"]
    stalls = [r for r in records if r.get("kind") == "stall" and r["ms"] > threshold_ms]
    ours = [r for r in stalls if r.get("ours")]
    worst = max([r["max_ms"] for r in windows] + [r["ms"] for r in stalls], default=0.0)
    top = sorted(stalls, key=lambda r: -r["ms"])[:3]
    return {
        "max_stall_ms": worst,
        "stalls_over_50ms": len(stalls),
        "stalls_over_50ms_in_our_code": len(ours),
        "max_stall_in_our_code_ms": max((r["ms"] for r in ours), default=0.0),
        "worst_stalls": [
            {"ms": r["ms"], "ours": r.get("ours"), "where": (r.get("stack") or ["?"])[-1]}
            for r in top
        ],
    }
