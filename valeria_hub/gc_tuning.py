"""Garbage-collector settings for the hub process.

A hub serving a thousand people keeps a large heap of long-lived objects (users,
spawners, ORM rows, the reflectors' copies of pods and events: ~440 MiB in the
1,000-user rush). Every full collection walks all of it while the event loop waits,
and CPython's defaults (a young collection every 700 net new container objects, a
full one once enough of those have survived) ran full collections often enough in
the rush to add up to tens of seconds of stalls, single pauses over a second.

``tune_gc`` moves everything alive at the time (the hub's and its libraries' modules,
the configuration) out of the collector's reach for good (``gc.freeze``), and makes
young collections rarer: reference counting frees almost every object at once, the
collector only finds cycles, which may wait a little longer.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000  # CPython's default: 700


def tune_gc(young_threshold: int = YOUNG_THRESHOLD) -> None:
    """Freeze what exists now; collect the youngest generation less often."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young_threshold, middle, old)
