"""The probes as SPCS runs them, against real HTTP servers on loopback: readiness comes and goes after
failureThreshold failures, and a failing liveness probe restarts the container."""

import http.server
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from spcs_local.emulator.probes import Prober
from spcs_local.emulator.workload import Probe

from .fakes import wait_until


class Health(http.server.BaseHTTPRequestHandler):
    status = 200  # what GET answers now: the test changes it

    def do_GET(self) -> None:
        self.send_response(type(self).status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health() -> Iterator[tuple[str, type[Health]]]:
    handler = type("Handler", (Health,), {"status": 200})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/healthcheck", handler
    server.shutdown()
    server.server_close()


def test_readiness_passes_at_once_and_fails_after_failure_threshold_failures(health) -> None:
    url, handler = health
    prober = Prober(restart=lambda container: None)
    handler.status = 503
    prober.watch("c1", (url, Probe(8000, "/healthcheck", period_seconds=1, failure_threshold=2)), None)
    try:
        time.sleep(0.5)
        assert not prober.ready("c1")  # never answered 200 yet: PENDING
        handler.status = 200
        assert wait_until(lambda: prober.ready("c1")) < 1.0  # probed often until it first passes

        handler.status = 503
        took = wait_until(lambda: not prober.ready("c1"), seconds=10)
        assert 0.9 <= took <= 4.0  # two failures, a period apart (the first may come at once)
        handler.status = 200
        wait_until(lambda: prober.ready("c1"))
    finally:
        prober.close()


def test_liveness_restarts_after_failure_threshold_failures_and_counts_it(health) -> None:
    url, handler = health
    began = datetime(2026, 1, 1, tzinfo=UTC)
    restarted: list[str] = []

    def restart(container: str) -> datetime:
        restarted.append(container)
        handler.status = 200  # the restarted container is healthy
        return began

    prober = Prober(restart=restart)
    handler.status = 500
    prober.watch("c2", None, (url, Probe(8000, "/healthcheck", period_seconds=1, failure_threshold=2)))
    try:
        wait_until(lambda: restarted == ["c2"], seconds=10)
        watched = prober.seen("c2")
        assert watched is not None
        assert (watched.restarts, watched.previous_start) == (1, began)
        assert watched.restarted_at is not None
        time.sleep(2.5)  # healthy now: no second restart
        assert restarted == ["c2"] and prober.ready("c2")  # no readiness probe: READY while it runs
    finally:
        prober.close()


def test_a_forgotten_container_is_probed_no_more(health) -> None:
    url, handler = health
    restarted: list[str] = []
    prober = Prober(restart=lambda container: restarted.append(container) or None)
    handler.status = 500
    prober.watch("c3", None, (url, Probe(8000, "/healthcheck", period_seconds=1, failure_threshold=1)))
    prober.forget("c3")
    try:
        time.sleep(2.0)
        assert restarted == [] and prober.seen("c3") is None
    finally:
        prober.close()
