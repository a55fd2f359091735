"""Readiness and liveness probes as SPCS runs them: GET on a container's port and path, where 200 passes.

Each probe runs every `periodSeconds` (5 by default); `failureThreshold` (3) failures in a row make a READY
container PENDING again (readiness), or restart it (liveness). Until a readiness probe first passes it runs
every quarter second, so that a service is READY moments after it answers. One thread probes every watched
container; each probe has a one-second timeout, so a container that never answers holds nothing up for long.
It knows nothing of Docker: it gets URLs, and a function that restarts a container by its id.
"""

import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from spcs_local.emulator.workload import Probe

STARTING_PERIOD = 0.25  # seconds between readiness probes until the first passes
TIMEOUT = 1.0


@dataclass
class Check:
    """One probe of one container."""

    url: str
    probe: Probe
    passed: bool = False  # ever
    failures: int = 0  # in a row
    due: float = 0.0


@dataclass
class Watched:
    readiness: Check | None = None
    liveness: Check | None = None
    restarts: int = 0
    restarted_at: datetime | None = None
    previous_start: datetime | None = None  # when the run before the current one began, where known
    ready: bool = False


@dataclass
class Prober:
    restart: Callable[[str], datetime | None]  # restarts a container; when the run it ended had begun
    watched: dict[str, Watched] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    context: ssl.SSLContext | None = None  # for probes through the instances' gates (https)

    def watch(self, container_id: str, readiness: tuple[str, Probe] | None, liveness: tuple[str, Probe] | None) -> None:
        """Probe the container from now on (once: watching it again changes nothing)."""
        with self.lock:
            if container_id in self.watched:
                return
            now = time.monotonic()
            self.watched[container_id] = Watched(
                Check(*readiness) if readiness else None,
                Check(*liveness, due=now + liveness[1].period_seconds) if liveness else None,
                ready=readiness is None,
            )
            if self.thread is None:
                self.thread = threading.Thread(target=self.run, name="probes", daemon=True)
                self.thread.start()

    def forget(self, container_id: str) -> None:
        with self.lock:
            self.watched.pop(container_id, None)

    def ready(self, container_id: str) -> bool:
        watched = self.watched.get(container_id)
        return watched is not None and watched.ready

    def seen(self, container_id: str) -> Watched | None:
        return self.watched.get(container_id)

    def run(self) -> None:
        while not self.stop.wait(0.05):
            now = time.monotonic()
            with self.lock:
                due = [(key, w) for key, w in self.watched.items()
                       for check in (w.readiness, w.liveness) if check and check.due <= now]  # fmt: skip
            for key, watched in dict(due).items():
                self.probe(key, watched, now)

    def probe(self, container_id: str, watched: Watched, now: float) -> None:
        readiness, liveness = watched.readiness, watched.liveness
        if readiness and readiness.due <= now:
            passed = answers(readiness.url, self.context)
            record(readiness, passed, now, STARTING_PERIOD if not readiness.passed and not passed else None)
            if passed:
                watched.ready = True
            elif readiness.failures >= readiness.probe.failure_threshold and readiness.passed:
                watched.ready = False
        if liveness and liveness.due <= now:
            record(liveness, answers(liveness.url, self.context), now)
            if liveness.failures >= liveness.probe.failure_threshold:
                self.restart_container(container_id, watched)

    def restart_container(self, container_id: str, watched: Watched) -> None:
        """A container whose liveness probe failed failureThreshold times: restarted, counted, probed anew."""
        watched.previous_start = self.restart(container_id)
        watched.restarts, watched.restarted_at = watched.restarts + 1, datetime.now(UTC)
        now = time.monotonic()
        for check in (watched.readiness, watched.liveness):
            if check:
                check.failures, check.passed = 0, False
                check.due = now + (check.probe.period_seconds if check is watched.liveness else 0)
        watched.ready = watched.readiness is None

    def close(self) -> None:
        self.stop.set()


def record(check: Check, passed: bool, now: float, sooner: float | None = None) -> None:
    check.failures = 0 if passed else check.failures + 1
    check.passed = check.passed or passed
    check.due = now + (sooner if sooner is not None else check.probe.period_seconds)


def answers(url: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT, context=context) as reply:
            return reply.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False
