"""Fixtures shared by the tests: the apps run as real processes on free loopback ports."""

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
from docker.models.images import Image
from hypothesis import settings
from snowflake.snowpark import Session
from xdist.scheduler import LoadScopeScheduling

from spcs_local.emulator import LOCAL_ONLY, client_env, connection_params
from spcs_local.processes import free_port, running

ROOT = Path(__file__).resolve().parent.parent
# Generated inputs: about 1000 a test by default; `make test-long` runs the "long" profile.
settings.register_profile("default", max_examples=1000)
settings.register_profile("long", max_examples=10_000)
os.environ.update(LOCAL_ONLY)  # no test's connection probes cloud metadata: nothing leaves the machine


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
    """Start the embedded Snowflake emulator in the foreground, as `make demo` does."""
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
    return Session.builder.configs(connection_params(env)).create()


def without_snowflake_env() -> dict[str, str]:
    """This process's environment with no SNOWFLAKE_* variable, so a test's own connection is the only one
    (LOCAL_ONLY's stay)."""
    kept = {name: value for name, value in os.environ.items() if not name.startswith("SNOWFLAKE_")}
    return {**kept, **LOCAL_ONLY}


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


# The images as the specs name them, built from each folder as it is (the folder is the build context).
IMAGES = {
    "echo-service": "my_echo_service_image:latest",
    "tutorial-2-job": "my_job_image:latest",
    "tutorial-3-service-to-service": "service_to_service:latest",
}
BASE_IMAGE = "python:3.11-slim-bookworm"
CONTAINER_REPORT: list[str] = []


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    """The local Docker engine; the container tier is skipped without one, unless CI requires it."""
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as error:
        reason = f"no Docker engine reachable ({type(error).__name__}), so the container tier cannot run"
        if os.getenv("SPCS_REQUIRE_DOCKER") == "1":
            pytest.fail(f"{reason}, and SPCS_REQUIRE_DOCKER=1 requires it")
        pytest.skip(reason)
    return client


@pytest.fixture(scope="session")
def images(docker_client: docker.DockerClient) -> dict[str, Image]:
    """Build every image for linux/amd64, and report sizes: the whole image, and its layers above the base."""
    built = {}
    for folder, tag in IMAGES.items():
        start = time.monotonic()
        built[folder], _ = docker_client.images.build(
            path=str(ROOT / folder), tag=tag, platform="linux/amd64", rm=True, forcerm=True
        )
        CONTAINER_REPORT.append(f"built {tag} in {time.monotonic() - start:.0f} s")
    base = docker_client.images.get(BASE_IMAGE)
    if "spcs-tutorials.stand-in-base" in (base.labels or {}):
        CONTAINER_REPORT.append(f"{BASE_IMAGE} here is a stand-in (debootstrap bookworm + python3), not the registry's")
    for folder, image in built.items():
        size, base_size = image.attrs["Size"] / 2**20, base.attrs["Size"] / 2**20
        CONTAINER_REPORT.append(f"{IMAGES[folder]:<32} {size:6.0f} MiB, app layers {size - base_size:5.0f} MiB")
    return built


# The modules whose tests share a module-scoped fixture (an emulator, a deployment, built images): each runs
# whole, in order, on one worker; every other test is a unit of its own. (pytest-xdist's xdist_group marks
# group nothing under pytest 9, whose node IDs they can no longer suffix.)
WHOLE_MODULES = ("test_containers", "test_local_spcs", "test_echo_service", "test_emulator_protocol", "test_security",
                 "test_service_functions", "test_sql_around_spcs")  # fmt: skip


class WholeModulesOrSingleTests(LoadScopeScheduling):
    def _split_scope(self, nodeid: str) -> str:
        module = nodeid.split("::", 1)[0]
        return module if Path(module).stem in WHOLE_MODULES else nodeid


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> WholeModulesOrSingleTests:
    return WholeModulesOrSingleTests(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The whole modules first, the container tier's before the rest: the single tests then fill in around
    them, and no long module starts last."""
    items.sort(key=lambda item: (item.path.stem not in WHOLE_MODULES, "containers" not in item.keywords))


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # a worker of pytest-xdist: its report goes to the controller
        workeroutput["container_report"] = CONTAINER_REPORT


def pytest_testnodedown(node: Any, error: Any) -> None:
    CONTAINER_REPORT.extend(node.workeroutput.get("container_report", []))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if CONTAINER_REPORT:
        terminalreporter.section("container images")
        for line in CONTAINER_REPORT:
            terminalreporter.write_line(line)
