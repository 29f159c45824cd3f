"""The controller manager of the devstack: Job, CronJob and garbage-collector controllers.

They run as asyncio tasks on the store's loop, learn about changes through a store
listener (which only queues work: the store must not be written from inside a
listener) and write status back with ``store.update``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .cronjob_controller import CRONJOBS, JOBS, CronJobController
from .gc import GarbageCollector, controller_uid
from .jobs_controller import JobController
from .store import Event, NotFound, Store

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Controllers:
    """Start/stop the controllers together.

    ``clock`` (returning an aware datetime) drives the CronJob schedule; tests pass a
    fake one and call ``check_cronjobs(now)``. ``cron_interval`` is how often the
    schedule is checked (None: only on demand and on CronJob/Job changes).
    ``pod_backoff`` is the Job controller's back-off before replacing a failed pod.
    ``registry`` (the API server's) makes the Job controller create pods through it, so
    they meet admission like the real controller's requests do.
    """

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], datetime] | None = None,
        pod_backoff: float = 10.0,
        cron_interval: float | None = 1.0,
        registry: Any = None,
    ) -> None:
        self.store = store
        self.clock = clock or _utcnow
        self.cron_interval = cron_interval
        self.gc = GarbageCollector(store)
        self.jobs = JobController(store, pod_backoff=pod_backoff, registry=registry)
        self.cronjobs = CronJobController(store)
        self._cron_queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._cron_pending: set[tuple[str, str]] = set()
        self._tasks: list[asyncio.Task] = []
        self._unsubscribe: Callable[[], None] | None = None

    async def start(self) -> None:
        await self.gc.start()
        self._unsubscribe = self.store.add_listener(self._on_change)
        self._tasks = [
            asyncio.create_task(self.jobs.run()),
            asyncio.create_task(self._cron_events()),
        ]
        if self.cron_interval:
            self._tasks.append(asyncio.create_task(self._cron_ticks()))

    async def stop(self) -> None:
        if self._unsubscribe:
            self._unsubscribe()
        self.jobs.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.gc.stop()

    def check_cronjobs(self, now: datetime | None = None) -> None:
        """Run the CronJob schedule check now (at ``now``, default the clock's time)."""
        self.cronjobs.sync_all(now or self.clock())

    def _on_change(self, event: Event) -> None:
        self.jobs.on_change(event)
        if event.resource == CRONJOBS and event.type != "DELETED":
            self._cron_enqueue((event.namespace, event.obj["metadata"]["name"]))
        elif event.resource == JOBS and controller_uid(event.obj):
            for ref in event.obj["metadata"].get("ownerReferences") or []:
                if ref.get("controller") and ref.get("kind") == "CronJob":
                    self._cron_enqueue((event.namespace, ref.get("name", "")))

    def _cron_enqueue(self, key: tuple[str, str]) -> None:
        if key not in self._cron_pending:
            self._cron_pending.add(key)
            self._cron_queue.put_nowait(key)

    async def _cron_events(self) -> None:
        while True:
            key = await self._cron_queue.get()
            self._cron_pending.discard(key)
            try:
                cj = self.store.get(CRONJOBS, *key)
            except NotFound:
                continue
            try:
                self.cronjobs.sync(cj, self.clock())
            except Exception:  # noqa: BLE001
                log.exception("devstack cronjob controller: %s/%s failed", *key)

    async def _cron_ticks(self) -> None:
        assert self.cron_interval
        while True:
            await asyncio.sleep(self.cron_interval)
            self.check_cronjobs()
