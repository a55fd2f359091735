"""Start local servers on free loopback ports, wait for them, and stop them by PID."""

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from typing import Any, Protocol


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Pollable(Protocol):
    """What `wait_for_http` watches while it waits: a Popen, or anything that polls like one."""

    args: Any
    returncode: int | None

    def poll(self) -> int | None: ...


def wait_for_http(url: str, process: Pollable | None = None, timeout: float = 30.0) -> None:
    """Poll `url` with GET until it answers 200, as a readiness probe does."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with code {process.returncode} before {url} was ready")
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} was not ready within {timeout:.0f} s")
        time.sleep(0.1)


def stop(*processes: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM the processes, all at once, then SIGKILL any still there after `timeout`."""
    running = [process for process in processes if process.poll() is None]
    for process in running:
        process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in running:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def running(
    args: Sequence[str], ready_url: str, env: dict[str, str] | None = None, **popen: object
) -> Iterator[subprocess.Popen]:
    """Run a server for the length of a `with` block; it is stopped however the block ends."""
    process = subprocess.Popen(args, env={**os.environ, **(env or {})}, **popen)  # type: ignore[call-overload]
    try:
        wait_for_http(ready_url, process)
        yield process
    finally:
        stop(process)
