"""Event-loop lag monitor for the benchmarks: how late a process's asyncio loop runs
a short timer, what the loop was executing when it stalled, and whether it was running
at all.

A tick task sleeps ``interval`` seconds in a loop and records how late it woke (the
lag). A watchdog thread notices a heartbeat older than ``stall`` seconds and, for as
long as the stall lasts, samples the loop thread's stack every ``interval / 2`` seconds,
so a stall can be blamed on the code that held the loop (ours, ``valeria_hub``, or
someone else's). Each sample stands for the time since the previous one *minus the
time the loop thread spent waiting for a CPU* (``/proc/.../schedstat``: on a shared
machine a process that is not scheduled stalls wherever it happens to be, and that is
no code's doing) *and in garbage collection* (counted apart: a collection runs wherever
an allocation sets it off, and its cost is the whole heap's). A stall record carries
that per-frame time, the loop thread's CPU time during the stall, its run-queue wait,
and the time spent in garbage collection.
Everything is appended as JSON lines to a file: one ``{"kind": "window"}`` record per
``report_every`` seconds with the largest lag seen, and one ``{"kind": "stall"}`` record
per stall.

Started from a hub configuration file (see ``benchmarks/hub_config.py``): JupyterHub
loads its configuration inside its running loop.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import json
import os
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

OUR_PACKAGE = "valeria_hub"
GC_FRAME = "<garbage collection>"


def frame_summary(frame: FrameType | None, limit: int = 40) -> list[str]:
    """The innermost ``limit`` frames from ``frame`` outwards, outermost first, as
    ``file:line function`` strings.

    Read from the frame objects alone: ``traceback.extract_stack`` also checks each
    file's source in ``linecache`` (a ``stat`` per frame), all of it holding the
    interpreter lock that the loop thread being measured needs."""
    found: list[str] = []
    while frame is not None and len(found) < limit:
        code = frame.f_code
        found.append(f"{code.co_filename}:{frame.f_lineno} {code.co_name}")
        frame = frame.f_back
    found.reverse()
    return found


def blame(frames: list[str], package: str = OUR_PACKAGE) -> str | None:
    """The innermost frame inside ``package`` (not this monitor), or None. Pure."""
    for line in reversed(frames):
        path = line.split(":", 1)[0].replace("\\", "/")
        if f"/{package}/" in path and not path.endswith("/looplag.py"):
            return line
    return None


def runqueue_wait(fd: int | None) -> float:
    """Seconds a thread has waited for a CPU so far (its ``schedstat``); 0 if unknown."""
    if fd is None:
        return 0.0
    try:
        return int(os.pread(fd, 128, 0).split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


def weigh(samples: list[tuple[float, list[str]]]) -> dict[str, Any]:
    """Milliseconds per innermost frame and per innermost frame of ours, from
    (seconds, frames) samples; the heaviest sample's frames. Pure."""
    where: collections.Counter[str] = collections.Counter()
    ours: collections.Counter[str] = collections.Counter()
    for seconds, frames in samples:
        where[frames[-1] if frames else "?"] += seconds * 1000
        if (mine := blame(frames)) is not None:
            ours[mine] += seconds * 1000
    heaviest = max(samples, key=lambda s: s[0])[1] if samples else []
    return {
        "ours_ms": round(sum(ours.values()), 1),
        "ours": ours.most_common(1)[0][0] if ours else None,
        "top": [[f, round(ms, 1)] for f, ms in where.most_common(3)],
        "top_ours": [[f, round(ms, 1)] for f, ms in ours.most_common(3)],
        "stack": heaviest,
    }


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
        # the current stall's samples: (beat id, [(seconds, frames)])
        self._samples: tuple[int, list[tuple[float, list[str]]]] | None = None
        # (time, loop thread's run-queue wait, GC time) when the tick went to sleep
        self._mark = (time.perf_counter(), 0.0, 0.0)
        self._sched_fd: int | None = None
        self._loop_thread: int | None = None
        self._gc_seconds = 0.0
        self._gc_started = 0.0
        self._stop = threading.Event()
        self._task: asyncio.Task | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start on the running loop (call from inside it)."""
        loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        with contextlib.suppress(OSError):
            path = f"/proc/self/task/{threading.get_native_id()}/schedstat"
            self._sched_fd = os.open(path, os.O_RDONLY)
        self._beat = time.perf_counter()
        gc.callbacks.append(self._on_gc)
        self._task = loop.create_task(self._tick())
        threading.Thread(target=self._watch, name="looplag-watchdog", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        elif self._gc_started:
            self._gc_seconds += time.perf_counter() - self._gc_started
            self._gc_started = 0.0

    def _write(self, record: dict[str, Any]) -> None:
        with self._lock, self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    async def _tick(self) -> None:
        window_start, window_gc = time.perf_counter(), self._gc_seconds
        worst, samples = 0.0, 0
        while not self._stop.is_set():
            before, cpu0, gc0 = time.perf_counter(), time.thread_time(), self._gc_seconds
            wait0 = runqueue_wait(self._sched_fd)
            self._mark = (before, wait0, gc0)
            await asyncio.sleep(self.interval)
            now = time.perf_counter()
            lag = max(0.0, now - before - self.interval)
            stall_id = self._beat_id
            self._beat, self._beat_id = now, stall_id + 1
            if lag >= self.stall:
                taken, self._samples = self._samples, None
                stall = weigh(taken[1] if taken and taken[0] == stall_id else [])
                self._write(
                    {
                        "kind": "stall",
                        "t": time.time(),
                        "ms": round(lag * 1000, 1),
                        "cpu_ms": round((time.thread_time() - cpu0) * 1000, 1),
                        "runqueue_ms": round((runqueue_wait(self._sched_fd) - wait0) * 1000, 1),
                        "gc_ms": round((self._gc_seconds - gc0) * 1000, 1),
                        **stall,
                    }
                )
            worst, samples = max(worst, lag), samples + 1
            if now - window_start >= self.report_every:
                self._write(
                    {"kind": "window", "t": time.time(), "max_ms": round(worst * 1000, 2),
                     "samples": samples, "gc_ms": round((self._gc_seconds - window_gc) * 1000, 1)}
                )  # fmt: skip
                window_start, window_gc, worst, samples = now, self._gc_seconds, 0.0, 0

    def _watch(self) -> None:
        """During a stall, sample the loop thread's stack; each sample stands for the
        time since the previous one (or since the tick slept) that the loop thread was
        not kept waiting for a CPU."""
        last = (0.0, 0.0, 0.0)  # (time, run-queue wait, GC time) at the previous sample
        pause = self.interval / 2
        while not self._stop.wait(pause):
            now, beat_id = time.perf_counter(), self._beat_id
            due = self._beat + self.stall + self.interval  # a stall from then on
            if now < due:
                # no stall possible before ``due``: waking every few ms until then would
                # take the interpreter lock from the loop being measured
                pause = max(self.interval / 2, due - now)
                continue
            pause = self.interval / 2
            frame = sys._current_frames().get(self._loop_thread or 0)
            if frame is None:
                continue
            frames = frame_summary(frame)
            wait, collected = runqueue_wait(self._sched_fd), self._gc_seconds
            if self._samples is None or self._samples[0] != beat_id:
                self._samples = (beat_id, [])
                last = self._mark
            # a collection holds the interpreter lock: its time shows up in the next
            # sample, wherever the allocation that set it off happened to be
            in_gc = max(0.0, collected - last[2])
            weight = max(0.0, (now - last[0]) - (wait - last[1]) - in_gc)
            self._samples[1].append((weight, frames))
            if in_gc:
                self._samples[1].append((in_gc, [GC_FRAME]))
            last = (now, wait, collected)


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
    """Largest lag, stalls over the threshold, and those in which our code held the loop
    for at least the threshold (run-queue waits excluded). Pure."""
    windows = [r for r in records if r.get("kind") == "window"]
    stalls = [r for r in records if r.get("kind") == "stall" and r["ms"] > threshold_ms]
    ours = [r for r in stalls if r.get("ours_ms", 0.0) >= threshold_ms]
    worst = max([r["max_ms"] for r in windows] + [r["ms"] for r in stalls], default=0.0)
    top = sorted(stalls, key=lambda r: -r["ms"])[:3]

    def total(key: str) -> float:
        return round(sum(r.get(key, 0.0) for r in stalls), 1)

    return {
        "max_stall_ms": worst,
        "stalls_over_50ms": len(stalls),
        "stalls_over_50ms_in_our_code": len(ours),
        "max_stall_in_our_code_ms": max((r["ours_ms"] for r in ours), default=0.0),
        "stall_ms_total": total("ms"),
        "of_which_waiting_for_cpu_ms": total("runqueue_ms"),
        "of_which_gc_ms": total("gc_ms"),
        "of_which_our_code_ms": total("ours_ms"),
        "gc_ms_all_windows": round(sum(r.get("gc_ms", 0.0) for r in windows), 1),
        "worst_stalls": [
            {key: r.get(key) for key in ("ms", "cpu_ms", "runqueue_ms", "gc_ms", "ours_ms", "top")}
            for r in top
        ],
        "worst_stalls_in_our_code": [
            {key: r.get(key) for key in ("ms", "ours_ms", "top_ours", "runqueue_ms")}
            for r in sorted(ours, key=lambda r: -r["ours_ms"])[:3]
        ],
    }
