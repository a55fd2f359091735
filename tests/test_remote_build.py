"""`snow spcs service remote-build`'s REST API: a build context on a stage becomes an image in a repository,
built by a job whose container `main` logs the build. The requests as the statements answer them, on fakes,
then over HTTP through the emulator's front with a real connector's session."""

import json
from pathlib import Path

import pytest
import requests
import snowflake.connector

from spcs_local.emulator import client_env, connection_params
from spcs_local.emulator.results import SnowflakeError

from .fakes import LocalSPCS, serving, wait_until

STAGE = "TUTORIAL_DB.DATA_SCHEMA.BUILDS"
CONTEXT = {"Dockerfile": "FROM python:3.11-slim-bookworm\nCOPY app.py .\n", "app.py": "print('hello')\n"}


@pytest.fixture
def spcs(tmp_path: Path) -> LocalSPCS:
    spcs = LocalSPCS(tmp_path).with_pool_and_images()
    spcs.stages.files |= {(STAGE, f"build_contexts/remote_build_1/{path}"): text for path, text in CONTEXT.items()}
    return spcs


def submit(spcs: LocalSPCS, **body: object) -> dict:
    request = {"build_type": "image", "build_source": f"@{STAGE}/build_contexts/remote_build_1",
               "location": "tutorial_repository", "name": "remote_echo", "image_tag": "v1"} | body  # fmt: skip
    return spcs.statements.submit_build(spcs.context, {k: v for k, v in request.items() if v is not None})


def test_a_build_job_builds_the_context_into_the_repository_and_logs_it(spcs: LocalSPCS) -> None:
    job = submit(spcs, compute_pool="tutorial_compute_pool")["job_name"]

    name = job.rsplit(".", 1)[1]
    assert job.startswith("TUTORIAL_DB.DATA_SCHEMA.SPCS_IMAGE_BUILDER_JOB_")
    wait_until(lambda: spcs.statements.build_job(spcs.context, job)["job_status"] == "DONE")
    assert spcs.backend.built == [
        ("127.0.0.1:5000/tutorial_db/data_schema/tutorial_repository/remote_echo:v1", ["Dockerfile", "app.py"])
    ]
    assert "Step 1/1 : FROM python" in spcs.value(f"SELECT SYSTEM$GET_SERVICE_LOGS('{name}', 0, 'main')")
    [listed] = spcs.statements.build_jobs()["jobs"]
    assert (listed["job_name"], listed["job_status"]) == (job, "DONE") and listed["end_time"]
    assert spcs.rows("SHOW JOB SERVICES")[0]["name"] == name


def test_a_failing_build_fails_its_job(spcs: LocalSPCS) -> None:
    spcs.stages.files[(STAGE, "build_contexts/remote_build_1/Dockerfile")] = "FROM nowhere\nRUN fail\n"

    job = submit(spcs)["job_name"]

    wait_until(lambda: spcs.statements.build_job(spcs.context, job)["job_status"] == "FAILED")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"build_type": "app"}, "builds images only"),
        ({"location": None}, "Name the image repository with --location"),
        ({"location": "no_such_repository"}, "Image repository 'TUTORIAL_DB.DATA_SCHEMA.NO_SUCH_REPOSITORY' does not"),
        ({"build_source": f"@{STAGE}/nothing_here"}, "Nothing was uploaded"),
        ({"image_tag": "bad tag!"}, "can't be an image's name and tag"),
        ({"compute_pool": "no_pool"}, "Compute pool 'NO_POOL' does not exist"),
    ],
)  # fmt: skip
def test_a_build_that_cant_run_is_refused_naming_the_problem(spcs: LocalSPCS, change: dict, problem: str) -> None:
    with pytest.raises(SnowflakeError, match=problem):
        submit(spcs, **change)
    assert spcs.backend.built == [] and spcs.rows("SHOW JOB SERVICES") == []


def test_the_api_answers_a_sessions_requests_over_http(spcs: LocalSPCS, tmp_path: Path) -> None:
    with serving(spcs, tmp_path / "snowflake") as base:
        port = int(base.rsplit(":", 1)[1])
        with snowflake.connector.connect(**connection_params(client_env(port))) as connection:
            headers = {"Authorization": f'Snowflake Token="{connection.rest.token}"', "Accept": "application/json"}
            body = {"build_source": f"@{STAGE}/build_contexts/remote_build_1", "location": "tutorial_repository"}
            submitted = requests.post(f"{base}/api/v2/remote-build/execute", json=body, headers=headers, timeout=10)
            job = submitted.json()["job_name"]
            looked_up = requests.get(f"{base}/api/v2/remote-build/jobs/{job}", headers=headers, timeout=10)
            unknown = requests.get(f"{base}/api/v2/remote-build/jobs/NOPE", headers=headers, timeout=10)
            stranger = requests.get(f"{base}/api/v2/remote-build/jobs", timeout=10)

    assert submitted.status_code == 200 and looked_up.json()["job_name"] == job
    assert unknown.status_code == 404 and "no remote build job NOPE" in json.loads(unknown.text)["message"]
    assert stranger.status_code == 401
