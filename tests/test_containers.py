"""The container tier: the three images, built unmodified, checked as images and run as containers.

It needs a Docker engine; without one it is skipped, unless SPCS_REQUIRE_DOCKER=1 (CI) makes that a failure.
The images running from their specs, as SPCS runs them, are tests/test_local_spcs.py's.
"""

import time
from collections.abc import Iterator

import docker
import pytest

from spcs_local.emulator import PASSWORD
from spcs_local.processes import wait_for_http

from .conftest import IMAGES

pytestmark = pytest.mark.containers


@pytest.fixture
def containers(docker_client: docker.DockerClient) -> Iterator[list]:
    """Containers a test starts; removed however it ends."""
    started: list = []
    yield started
    for container in started:
        container.remove(force=True)


def run_echo(docker_client: docker.DockerClient, containers: list, **options: object) -> tuple[object, str]:
    """The Echo image with its port published on 127.0.0.1; returns the container and its base URL."""
    echo = docker_client.containers.run(
        IMAGES["echo-service"], detach=True, ports={"8080/tcp": ("127.0.0.1", None)}, **options
    )
    containers.append(echo)
    echo.reload()
    port = echo.ports["8080/tcp"][0]["HostPort"]
    return echo, f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("app", IMAGES)
def test_each_image_is_linux_amd64_non_root_and_exec_form(images: dict, app: str) -> None:
    config = images[app].attrs["Config"]

    assert (images[app].attrs["Os"], images[app].attrs["Architecture"]) == ("linux", "amd64")
    assert config["User"] not in ("", "root", "0", "0:0")
    for command in (config.get("Entrypoint"), config.get("Cmd")):
        assert not command or command[:2] != ["/bin/sh", "-c"], command


def test_the_echo_image_serves_on_the_port_it_exposes(images: dict, docker_client, containers: list) -> None:
    assert list(images["echo-service"].attrs["Config"]["ExposedPorts"]) == ["8080/tcp"]

    # No SERVER_PORT: the app's default port must be the one the image exposes.
    _, url = run_echo(docker_client, containers)
    wait_for_http(f"{url}/healthcheck", timeout=60)


@pytest.mark.parametrize("app", IMAGES)
def test_no_credential_is_in_an_images_history_or_layers(images: dict, app: str) -> None:
    image = images[app]
    secrets = [PASSWORD.encode()]
    history = " ".join(step.get("CreatedBy", "") for step in image.history()).encode()
    env = " ".join(image.attrs["Config"].get("Env") or [])

    assert not any(secret in history for secret in secrets)
    assert "PASSWORD" not in env and "TOKEN" not in env
    tail = b""
    for chunk in image.save(chunk_size=1 << 20):
        window = tail + chunk
        assert not any(secret in window for secret in secrets)
        tail = chunk[-64:]


def test_docker_stop_on_the_echo_container_returns_within_2_s(images: dict, docker_client, containers: list) -> None:
    # An image that ignored SIGTERM would take the whole 10 s every time; the best of three
    # stops keeps a busy machine's noise out of the answer.
    stops, logs = [], ""
    for _ in range(3):
        echo, url = run_echo(docker_client, containers)
        wait_for_http(f"{url}/healthcheck", timeout=60)
        start = time.monotonic()
        echo.stop(timeout=10)  # SIGTERM, then SIGKILL after 10 s
        stops.append(time.monotonic() - start)
        echo.reload()
        assert echo.attrs["State"]["ExitCode"] == 0
        logs = echo.logs().decode()

    assert min(stops) < 2, f"docker stop took {stops} s; the last container's log:\n{logs}"
