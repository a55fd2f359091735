"""The emulator's Snowflake protocol, spoken to by the real connector and by raw HTTP on loopback:
long statements answered "in progress" and polled, a repeated request not run twice, session tokens
for the image registry, and no HTTP 500 whatever the statement."""

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import requests
import snowflake.connector
import snowflake.connector.errors

from spcs_local.emulator import client_env, connection_params
from spcs_local.processes import free_port

from .conftest import ROOT, start_emulator
from .fakes import FakeBackend, LocalSPCS, serving

JOB_SPEC = (ROOT / "tutorial-2-job" / "my_job_spec.yaml").read_text()
SLOW_JOB_SECONDS = 2.0


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, LocalSPCS]]:
    """The front on a free loopback port, over fakesnow and a catalog on fakes; jobs take 2 s and the
    front answers "in progress" after 0.3 s, so that every job is polled for."""
    directory = tmp_path_factory.mktemp("emulator")
    spcs = LocalSPCS(directory / "spcs", FakeBackend(job_seconds=SLOW_JOB_SECONDS))
    spcs.with_pool_and_images("my_job_image")
    with serving(spcs, directory / "snowflake", poll_seconds=0.3) as base:
        yield base, spcs


def connect(base: str) -> snowflake.connector.SnowflakeConnection:
    return snowflake.connector.connect(**connection_params(client_env(int(base.rsplit(":", 1)[1]))))


def login(base: str) -> str:
    """A session token, from a raw login request as the connector sends it."""
    data = {"LOGIN_NAME": "tutorial_user", "PASSWORD": "tutorial_password", "SESSION_PARAMETERS": {}}
    reply = requests.post(f"{base}/session/v1/login-request?databaseName=TUTORIAL_DB&schemaName=DATA_SCHEMA",
                          json={"data": data}, timeout=10).json()  # fmt: skip
    assert reply["success"], reply
    return reply["data"]["token"]


def test_a_job_longer_than_the_answer_window_is_polled_for_and_runs_once(emulator: tuple[str, LocalSPCS]) -> None:
    base, spcs = emulator
    started = len(spcs.backend.started)
    sql = f"EXECUTE JOB SERVICE IN COMPUTE POOL tutorial_compute_pool NAME=polled FROM SPECIFICATION $${JOB_SPEC}$$"
    with connect(base) as connection:
        start = time.monotonic()
        [[status]] = connection.cursor().execute(sql).fetchall()

    assert status == "Job POLLED completed successfully with status: DONE."
    assert time.monotonic() - start >= SLOW_JOB_SECONDS
    assert len(spcs.backend.started) == started + 1


def test_a_repeated_request_id_gets_the_same_query_instead_of_a_second_run(emulator: tuple[str, LocalSPCS]) -> None:
    base, spcs = emulator
    headers = {"Authorization": f'Snowflake Token="{login(base)}"'}
    url = f"{base}/queries/v1/query-request?requestId={uuid.uuid4()}"
    body = {"sqlText": f"EXECUTE JOB SERVICE IN COMPUTE POOL tutorial_compute_pool NAME=once "
                       f"FROM SPECIFICATION $${JOB_SPEC}$$", "sequenceId": 1}  # fmt: skip
    started = len(spcs.backend.started)

    first = requests.post(url, json=body, headers=headers, timeout=10).json()
    again = requests.post(url, json=body, headers=headers, timeout=10).json()  # as after a socket timeout

    assert first["code"] == again["code"] == "333333"
    assert first["data"]["getResultUrl"] == again["data"]["getResultUrl"]
    deadline = time.monotonic() + 30
    while (answer := requests.get(base + first["data"]["getResultUrl"], headers=headers, timeout=10).json())["code"]:
        assert time.monotonic() < deadline
    assert answer["data"]["rowset"] == [["Job ONCE completed successfully with status: DONE."]]
    assert len(spcs.backend.started) == started + 1


def test_the_token_request_gives_the_image_registry_a_session_token(emulator: tuple[str, LocalSPCS]) -> None:
    base, _ = emulator
    token = login(base)
    headers = {"Authorization": f'Snowflake Token="{token}"'}

    issued = requests.post(f"{base}/session/token-request", json={"oldSessionToken": token, "requestType": "ISSUE"},
                           headers=headers, timeout=10).json()  # fmt: skip
    refused = requests.post(f"{base}/session/token-request", json={"oldSessionToken": "nope", "requestType": "ISSUE"},
                            headers=headers, timeout=10).json()  # fmt: skip

    assert issued["success"] and issued["data"]["sessionToken"] == token and issued["data"]["validityInSecondsST"] > 0
    assert not refused["success"] and refused["code"] == "390112"


def test_logins_are_checked(emulator: tuple[str, LocalSPCS]) -> None:
    base, _ = emulator
    bad = {"LOGIN_NAME": "tutorial_user", "PASSWORD": "wrong", "SESSION_PARAMETERS": {}}

    assert requests.post(f"{base}/session/v1/login-request", json={"data": bad}, timeout=10).json()["code"] == "390100"
    for token, success in ((login(base), True), ("local-spcs-session-token", False), ("", False)):
        oauth = {"AUTHENTICATOR": "OAUTH", "TOKEN": token, "SESSION_PARAMETERS": {}}
        reply = requests.post(f"{base}/session/v1/login-request", json={"data": oauth}, timeout=10)
        assert reply.json()["success"] is success


@pytest.mark.parametrize(
    "sql",
    [
        "copy into @nowhere from (select 1)",
        "describe warehouse w",
        "SHOW SERVICES LIKE 'x",
        "create task t as select 1",
    ],
)
def test_no_statement_gets_an_http_500_but_a_snowflake_error_at_once(emulator: tuple[str, LocalSPCS], sql: str) -> None:
    base, _ = emulator
    headers = {"Authorization": f'Snowflake Token="{login(base)}"'}

    reply = requests.post(f"{base}/queries/v1/query-request?requestId={uuid.uuid4()}", json={"sqlText": sql},
                          headers=headers, timeout=10)  # fmt: skip

    assert reply.status_code == 200
    assert reply.json()["success"] is False and reply.json()["code"] and "Traceback" not in reply.text


@pytest.mark.parametrize("path", ["/session/v1/login-request", "/queries/v1/query-request", "/session/token-request"])
@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
def test_bodies_that_are_not_json_get_a_4xx_naming_the_problem(
    emulator: tuple[str, LocalSPCS], path: str, content_type: str
) -> None:
    base, _ = emulator

    reply = requests.post(f"{base}{path}", data=b"\x00not json", headers={"Content-Type": content_type}, timeout=10)

    assert reply.status_code in (400, 415) and reply.json()["success"] is False and "Traceback" not in reply.text
    assert "JSON" in reply.json()["message"]


def test_other_sql_still_runs_on_fakesnow_in_the_sessions_context(emulator: tuple[str, LocalSPCS]) -> None:
    base, _ = emulator
    with connect(base) as connection:
        cursor = connection.cursor()
        cursor.execute("create or replace table t (n int)")
        cursor.execute("insert into t values (1), (2)")

        assert cursor.execute("select sum(n), current_role(), current_warehouse() from t").fetchall() == [
            (3, "TEST_ROLE", "TUTORIAL_WAREHOUSE")
        ]


def test_clients_of_the_emulator_never_probe_cloud_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    from snowflake.connector.platform_detection import detect_platforms

    monkeypatch.delenv("SNOWFLAKE_DISABLE_PLATFORM_DETECTION", raising=False)
    for name, value in client_env(8765).items():  # what a job, the demo or `make local-up`'s exports get
        monkeypatch.setenv(name, value)

    assert detect_platforms(platform_detection_timeout_seconds=0.2) == ["disabled"]
    assert "disable_platform_detection" not in connection_params(client_env(8765))


def test_several_statements_in_one_request_are_refused_before_any_runs(emulator: tuple[str, LocalSPCS]) -> None:
    base, _ = emulator
    with connect(base) as connection:
        cursor = connection.cursor()
        cursor.execute("create or replace table kept (n int)")

        with pytest.raises(snowflake.connector.errors.ProgrammingError) as refused:
            cursor.execute("select 1; drop table kept")
        with pytest.raises(snowflake.connector.errors.ProgrammingError) as asked_for:
            cursor.execute("insert into kept values (1); insert into kept values (2)", num_statements=2)

        assert (refused.value.errno, refused.value.raw_msg) == (
            8, "Actual statement count 2 did not match the desired statement count 1."
        )  # fmt: skip
        assert "runs one statement a request" in asked_for.value.msg
        assert cursor.execute("select count(*) from kept; -- a trailing ; ends no statement").fetchall() == [(0,)]
        assert cursor.execute("select ';' as semicolon /* ; */").fetchall() == [(";",)]


BIG_INSERT = "insert into big select seq8() from table(generator(rowcount => 2000000000))"


def run_cancelled(connection: snowflake.connector.SnowflakeConnection, cancel: Callable[[], object]) -> list[Exception]:
    """Run BIG_INSERT in a thread and cancel it (again and again, until it ends): its errors."""
    connection.cursor().execute("create or replace table big (n int)")
    errors: list[Exception] = []

    def insert() -> None:
        try:
            connection.cursor().execute(BIG_INSERT)
        except snowflake.connector.errors.Error as error:
            errors.append(error)

    thread = threading.Thread(target=insert, daemon=True)
    thread.start()
    for _ in range(60):
        thread.join(0.5)
        if not thread.is_alive():
            break
        cancel()
    return errors


def test_cancel_all_queries_rolls_the_running_statement_back(emulator: tuple[str, LocalSPCS]) -> None:
    base, _ = emulator
    with connect(base) as connection, connect(base) as watcher:
        errors = run_cancelled(connection, lambda: connection.cursor().execute("select system$cancel_all_queries(0)"))

        assert [error.errno for error in errors] == [604] and "SQL execution canceled" in str(errors[0])  # type: ignore[attr-defined]
        assert watcher.cursor().execute("select count(*) from big").fetchall() == [(0,)]


def test_the_connectors_abort_request_rolls_the_running_statement_back(emulator: tuple[str, LocalSPCS]) -> None:
    base, _ = emulator
    with connect(base) as connection, connect(base) as watcher:
        connection.cursor().execute("create or replace table big (n int)")

        with pytest.raises(snowflake.connector.errors.ProgrammingError) as cancelled:
            connection.cursor().execute(BIG_INSERT, timeout=1)  # the connector sends abort-request after 1 s

        assert cancelled.value.errno == 604
        assert watcher.cursor().execute("select count(*) from big").fetchall() == [(0,)]


def test_closing_a_session_cancels_what_it_runs(emulator: tuple[str, LocalSPCS]) -> None:
    base, _ = emulator
    with connect(base) as connection, connect(base) as watcher:
        token = connection.rest.token
        closes = lambda: requests.post(f"{base}/session?delete=true", headers=auth(token), timeout=10)  # noqa: E731
        errors = run_cancelled(connection, closes)

        assert errors and "SQL execution canceled" in str(errors[0])
        assert watcher.cursor().execute("select count(*) from big").fetchall() == [(0,)]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f'Snowflake Token="{token}"'}


def test_a_login_to_a_database_that_does_not_exist_has_no_current_database(emulator: tuple[str, LocalSPCS]) -> None:
    base, _ = emulator
    port = int(base.rsplit(":", 1)[1])
    params = connection_params({**client_env(port), "SNOWFLAKE_DATABASE": "NO_SUCH_DB"})
    with snowflake.connector.connect(**params) as connection:
        cursor = connection.cursor()

        assert cursor.execute("select current_database(), current_schema()").fetchall() == [(None, None)]
        with pytest.raises(snowflake.connector.errors.ProgrammingError, match="does not have a current database"):
            cursor.execute("create table t (n int)")
        assert "NO_SUCH_DB" not in [row[1] for row in cursor.execute("show databases").fetchall()]


@pytest.mark.parametrize("name", ['"../escaped"', '"a/b"', '"two words"'])
def test_a_database_name_that_cant_be_a_file_name_is_refused(emulator: tuple[str, LocalSPCS], name: str) -> None:
    base, spcs = emulator
    refused = pytest.raises(snowflake.connector.errors.ProgrammingError, match="name yours with letters, digits")
    with connect(base) as connection, refused:
        connection.cursor().execute(f"create database {name}")

    assert not list(spcs.path.parent.rglob("escaped*"))


def test_staged_files_stay_in_the_data_dir_across_a_restart_and_nothing_is_left_in_tmp(tmp_path) -> None:
    port, data, temp = free_port(), tmp_path / "snowflake", tmp_path / "tmp"
    temp.mkdir()
    spec = ROOT / "tutorial-2-job" / "my_job_spec.yaml"
    with start_emulator(port, data, env={"TMPDIR": str(temp)}), connect(f"http://127.0.0.1:{port}") as connection:
        connection.cursor().execute("create stage specs")
        connection.cursor().execute(f"put file://{spec} @specs auto_compress=false")
    assert list(temp.iterdir()) == []  # the emulator stopped, and left no folder behind

    with start_emulator(port, data), connect(f"http://127.0.0.1:{port}") as connection:
        listed = connection.cursor().execute("list @specs").fetchall()

    assert [row[0] for row in listed] == ["specs/my_job_spec.yaml"]


def test_an_emulator_that_cant_start_leaves_nothing_in_tmp(tmp_path) -> None:
    port, data, temp = free_port(), tmp_path / "snowflake", tmp_path / "tmp"
    temp.mkdir()
    with start_emulator(port, data):
        second = subprocess.run([sys.executable, "-m", "spcs_local.emulator", "--port", str(free_port()),
                                 "--data-dir", str(data)], cwd=ROOT, env={**os.environ, "TMPDIR": str(temp)},
                                capture_output=True, text=True, timeout=60)  # fmt: skip

    assert second.returncode == 1
    assert second.stderr.startswith("Can't start the emulator:") and second.stderr.count("\n") == 1
    assert list(temp.iterdir()) == []
