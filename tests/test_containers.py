"""The container tier: build the three images unmodified, check them, and run them from their specs.

It needs a Docker engine; without one it is skipped, unless SPCS_REQUIRE_DOCKER=1 (CI) makes that a failure.
"""

import time
from collections.abc import Iterator

import pytest
import yaml

from spcs_local.emulator import OAUTH_TOKEN, PASSWORD
from spcs_local.processes import wait_for_http
from spcs_local.runner import ContainerProcess, LocalSPCS, local_spcs

from .conftest import IMAGES, ROOT, snowpark_session

pytestmark = pytest.mark.containers

APPS = {
    "echo-service": "echo-service/echo_spec.yaml",
    "tutorial-2-job": "tutorial-2-job/my_job_spec.yaml",
    "tutorial-3-service-to-service": "tutorial-3-service-to-service/service_to_service_spec.yaml",
}


def load_spec(path: str) -> dict:
    return yaml.safe_load((ROOT / path).read_text())


@pytest.fixture
def spcs(images: dict) -> Iterator[LocalSPCS]:
    with local_spcs() as spcs:
        yield spcs


@pytest.mark.parametrize("app", APPS)
def test_each_image_is_linux_amd64_non_root_and_exec_form(images: dict, app: str) -> None:
    config = images[app].attrs["Config"]

    assert (images[app].attrs["Os"], images[app].attrs["Architecture"]) == ("linux", "amd64")
    assert config["User"] not in ("", "root", "0", "0:0")
    for command in (config.get("Entrypoint"), config.get("Cmd")):
        assert not command or command[:2] != ["/bin/sh", "-c"], command


def test_the_echo_image_serves_on_the_port_it_exposes(images: dict, spcs: LocalSPCS) -> None:
    exposed = list(images["echo-service"].attrs["Config"]["ExposedPorts"])
    assert exposed == ["8080/tcp"]

    # No SERVER_PORT: the app's default port must be the one the image exposes.
    echo = spcs.start("echo-default-port", IMAGES["echo-service"], [8080])
    wait_for_http(f"http://127.0.0.1:{spcs.host_port(echo, 8080)}/healthcheck", ContainerProcess(echo), timeout=60)


@pytest.mark.parametrize("app", APPS)
def test_no_credential_is_in_an_images_history_or_layers(images: dict, app: str) -> None:
    image = images[app]
    secrets = [PASSWORD.encode(), OAUTH_TOKEN.encode()]
    history = " ".join(step.get("CreatedBy", "") for step in image.history()).encode()
    env = " ".join(image.attrs["Config"].get("Env") or [])

    assert not any(secret in history for secret in secrets)
    assert "PASSWORD" not in env and "TOKEN" not in env
    tail = b""
    for chunk in image.save(chunk_size=1 << 20):
        window = tail + chunk
        assert not any(secret in window for secret in secrets)
        tail = chunk[-64:]


def test_echo_service_and_the_caller_from_their_specs_say_bob_said_hello(spcs: LocalSPCS, capsys) -> None:
    spcs.start_emulator()
    spcs.run_service("echo_service", load_spec(APPS["echo-service"]))

    done = spcs.run_job("tutorial_3_job_service", load_spec(APPS["tutorial-3-service-to-service"]))

    output = capsys.readouterr().out
    assert done
    assert "Job TUTORIAL_3_JOB_SERVICE completed successfully with status: DONE." in output
    assert "Received response from http://echo-service:8000/echo: Bob said Hello" in output


def test_the_job_from_its_spec_appends_a_row_on_the_emulator(spcs: LocalSPCS, capsys) -> None:
    host_env = spcs.start_emulator()

    done = spcs.run_job("tutorial_2_job_service", load_spec(APPS["tutorial-2-job"]))

    assert done, capsys.readouterr().out
    assert "job-tutorial - INFO - Job finished" in capsys.readouterr().out
    with snowpark_session(host_env) as session:
        assert [row[1] for row in session.table("results").collect()] == ["hello"]


def test_a_job_with_a_bad_query_is_failed_with_the_error_in_its_logs(spcs: LocalSPCS, capsys) -> None:
    spcs.start_emulator()
    spec = load_spec(APPS["tutorial-2-job"])
    spec["spec"]["containers"][0]["args"] = ["--query=select nosuchcolumn from nowhere", "--result_table=results"]

    done = spcs.run_job("tutorial_2_job_service", spec)

    output = capsys.readouterr().out
    assert not done
    assert "Job TUTORIAL_2_JOB_SERVICE failed with status: FAILED (container main exited with code 1)." in output
    assert "job-tutorial - ERROR - Job failed:" in output and "NOWHERE" in output


def test_docker_stop_on_the_echo_container_returns_within_2_s(spcs: LocalSPCS) -> None:
    # An image that ignored SIGTERM would take the whole 10 s every time; the best of three
    # stops keeps a busy machine's noise out of the answer.
    stops, logs = [], ""
    for attempt in range(3):
        spcs.run_service(f"echo_service_{attempt}", load_spec(APPS["echo-service"]))
        echo = spcs.containers[-1]
        start = time.monotonic()
        echo.stop(timeout=10)  # SIGTERM, then SIGKILL after 10 s
        stops.append(time.monotonic() - start)
        echo.reload()
        assert echo.attrs["State"]["ExitCode"] == 0
        logs = echo.logs().decode()

    assert min(stops) < 2, f"docker stop took {stops} s; the last container's log:\n{logs}"
