"""The loop-lag monitor names a stalled loop's frames, innermost last, and blames ours."""

from __future__ import annotations

import sys

from benchmarks.looplag import blame, frame_summary


def outer() -> list[str]:
    return inner()


def inner() -> list[str]:
    return frame_summary(sys._getframe())


def test_frames_run_outermost_first_with_file_line_and_function():
    frames = outer()
    assert frames[-1].endswith(" inner") and frames[-2].endswith(" outer")
    path, rest = frames[-1].split(":", 1)
    assert path == __file__ and rest.split()[0].isdigit()


def test_only_the_innermost_frames_are_kept():
    frames = frame_summary(sys._getframe(), limit=2)
    assert len(frames) == 2
    assert frames[-1].endswith(" test_only_the_innermost_frames_are_kept")


def test_blame_picks_the_innermost_frame_of_the_package():
    frames = [
        "/x/asyncio/events.py:80 _run",
        "/x/valeria_hub/spawner.py:10 start",
        "/x/valeria_hub/storage.py:5 home_dir",
        "/x/sqlalchemy/engine.py:1 execute",
    ]
    assert blame(frames) == "/x/valeria_hub/storage.py:5 home_dir"
    assert blame(frames[:1]) is None
