"""Fixtures shared by the tests: the apps run as real processes on free loopback ports."""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from snowflake.snowpark import Session

from spcs_local.emulator import client_env
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


def start_emulator(port: int, data_dir: Path, **popen: object):
    """Start the embedded Snowflake emulator as `make local-snowflake` does."""
    args = [sys.executable, "-m", "spcs_local.emulator", "--port", str(port), "--data-dir", str(data_dir)]
    popen.setdefault("stdout", subprocess.DEVNULL)
    return running(args, f"http://127.0.0.1:{port}/healthcheck", cwd=ROOT, **popen)


@pytest.fixture(scope="session")
def emulator_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The SNOWFLAKE_* env of one emulator, on a fresh database, shared by the tests."""
    port = free_port()
    with start_emulator(port, tmp_path_factory.mktemp("snowflake")):
        yield client_env(port)


def snowpark_session(env: dict[str, str]) -> Session:
    """A real Snowpark session from SNOWFLAKE_* env vars, as the job makes one."""
    params = {name.removeprefix("SNOWFLAKE_").lower(): value for name, value in env.items()}
    return Session.builder.configs(params).create()


def live_snowflake_env() -> dict[str, str]:
    """The SNOWFLAKE_* env of a real account, or a skip that says how to configure one."""
    env = {name: value for name, value in os.environ.items() if name.startswith("SNOWFLAKE_")}
    if env.get("SNOWFLAKE_CONNECTION_NAME"):
        return env
    if env.get("SNOWFLAKE_ACCOUNT") and env.get("SNOWFLAKE_HOST", "") not in ("127.0.0.1", "localhost"):
        return env
    pytest.skip(
        "no Snowflake account configured: set SNOWFLAKE_CONNECTION_NAME to a connection in connections.toml, "
        "or SNOWFLAKE_ACCOUNT, SNOWFLAKE_USER and SNOWFLAKE_PASSWORD, to run the live tests"
    )
