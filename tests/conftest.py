"""Fixtures shared by the tests: the apps run as real processes on free loopback ports."""

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from spcs_local.processes import free_port, running

ROOT = Path(__file__).resolve().parent.parent


ECHO_SERVICE = [sys.executable, str(ROOT / "echo-service" / "echo_service.py")]


def start_echo_service(port: int, env: dict[str, str] | None = None, **popen: object):
    """Start the Echo service the way the README does: `python3 echo-service/echo_service.py`."""
    env = {"SERVER_HOST": "127.0.0.1", "SERVER_PORT": str(port), **(env or {})}
    return running(ECHO_SERVICE, f"http://127.0.0.1:{port}/healthcheck", env, **popen)


@pytest.fixture(scope="session")
def echo_url() -> Iterator[str]:
    """Base URL of one Echo service (CHARACTER_NAME=Bob) shared by the tests."""
    port = free_port()
    with start_echo_service(port, {"CHARACTER_NAME": "Bob"}):
        yield f"http://127.0.0.1:{port}"
