"""The local SPCS trusts no one it shouldn't: what it refuses, through the real connector, raw HTTP on loopback,
the statements and the emulator's own process. Each test stands for a class; its cases are members of it."""

import gzip
import http.client
import http.server
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import snowflake.connector
import snowflake.connector.errors

from spcs_local.emulator import client_env, connection_params
from spcs_local.emulator.guard import Sessions
from spcs_local.processes import free_port, wait_for_http

from .conftest import ROOT
from .fakes import FakeBackend, LocalSPCS, serving
from .test_service_functions import run_into

JOB_SPEC = (ROOT / "tutorial-2-job" / "my_job_spec.yaml").read_text()
LOGIN = {"data": {"LOGIN_NAME": "tutorial_user", "PASSWORD": "tutorial_password", "SESSION_PARAMETERS": {}}}


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, LocalSPCS]]:
    """The front on a free loopback port over fakesnow and a catalog on fakes; jobs run for a minute."""
    directory = tmp_path_factory.mktemp("security")
    spcs = LocalSPCS(directory / "spcs", FakeBackend(job_seconds=60))
    spcs.with_pool_and_images("my_job_image")
    with serving(spcs, directory / "snowflake", poll_seconds=0.3) as base:
        yield base, spcs


def connect(base: str, **extra: object) -> snowflake.connector.SnowflakeConnection:
    return snowflake.connector.connect(**connection_params(client_env(int(base.rsplit(":", 1)[1]))), **extra)


def token_of(base: str) -> str:
    url = f"{base}/session/v1/login-request?databaseName=TUTORIAL_DB&schemaName=DATA_SCHEMA"
    return requests.post(url, json=LOGIN, timeout=10).json()["data"]["token"]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f'Snowflake Token="{token}"'}


# --- no SQL touches the host's files ------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "select * from read_text('{outside}')",
        "select * from read_blob('/proc/self/environ')",
        "select * from glob('/etc/*')",
        "select * from read_csv('{outside}')",
        "select content from read_text('{data}/../../../../../../{outside}')",
        "copy (select 'written') to '{outside}.copy'",
        "attach '{outside}.db' as elsewhere",
        "install httpfs",
        "load httpfs",
        "pragma database_list",
        "export database '{outside}.export'",
    ],
)
def test_no_statement_reads_or_writes_a_file_of_the_host(emulator: tuple[str, LocalSPCS], tmp_path, sql: str) -> None:
    base, spcs = emulator
    outside = tmp_path / "secret.txt"
    outside.write_text("the host's secret")
    statement = sql.format(outside=outside, data=spcs.path.parent)

    with connect(base) as connection, pytest.raises(snowflake.connector.errors.ProgrammingError) as refused:
        connection.cursor().execute(statement).fetchall()

    assert "the host's secret" not in str(refused.value)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["secret.txt"]


def test_stages_keep_working_through_the_emulators_own_code(emulator: tuple[str, LocalSPCS], tmp_path) -> None:
    base, _ = emulator
    files = []
    for n in range(6):
        files.append(tmp_path / f"part_{n}.csv")
        files[-1].write_text(f"{n},row {n}\n")
    with connect(base) as connection:
        cursor = connection.cursor()
        cursor.execute("create or replace stage uploads")
        # Several files on one session, as `snow stage copy` sends them: uploads in parallel.
        cursor.execute(f"put 'file://{tmp_path}/*.csv' @uploads auto_compress=false parallel=4").fetchall()
        listed = sorted(row[0] for row in cursor.execute("list @uploads").fetchall())
        cursor.execute("create or replace table parts (n int, text varchar)")
        cursor.execute("copy into parts from @uploads")

        assert listed == [f"uploads/{file.name}" for file in files]
        assert cursor.execute("select count(*) from parts").fetchall() == [(6,)]


@pytest.mark.parametrize("name", ['"../../../../../../{victim}"', '"a/b"', '".."'])
def test_a_stage_named_like_a_path_never_reaches_outside_the_stages(
    emulator: tuple[str, LocalSPCS], tmp_path, name: str
) -> None:
    base, _ = emulator
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("kept")
    statement = f"create or replace stage {name.format(victim=str(victim).lstrip('/'))}"

    with connect(base) as connection:
        try:
            connection.cursor().execute(statement)
            connection.cursor().execute(statement)  # OR REPLACE empties the stage's folder
        except snowflake.connector.errors.ProgrammingError as refused:
            assert "keeps stages as folders" in str(refused)

    assert (victim / "keep.txt").read_text() == "kept"


# --- names never become paths ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ['"/../../../../tmp/{marker}"', '".."', '"a/../../b"', '"..\\\\x"'])
def test_a_job_named_like_a_path_writes_and_deletes_nothing_outside(tmp_path, name: str) -> None:
    spcs = LocalSPCS(tmp_path / "local" / "spcs")
    spcs.with_pool_and_images("my_job_image")
    marker = f"marker-{uuid.uuid4().hex}"
    neighbour = tmp_path / "neighbour.log"
    neighbour.write_text("kept")
    job = name.format(marker=marker)

    spcs.sql(
        f"EXECUTE JOB SERVICE IN COMPUTE POOL tutorial_compute_pool NAME = {job} FROM SPECIFICATION $${JOB_SPEC}$$"
    )
    spcs.sql(f"DROP SERVICE {job}")

    assert not Path("/tmp", marker).exists()
    assert neighbour.read_text() == "kept"
    written = [path for path in tmp_path.rglob("*") if path.is_file() and path != neighbour]
    assert all(path.is_relative_to(tmp_path / "local") for path in written)


# --- request bounds -------------------------------------------------------------------------------


def test_a_compressed_body_is_bounded_after_decompression_too(emulator: tuple[str, LocalSPCS]) -> None:
    base, _ = emulator
    bomb = gzip.compress(b'{"data": {"LOGIN_NAME": "' + b"a" * (64 * 2**20) + b'"}}')  # 64 MiB from 64 KiB

    reply = requests.post(f"{base}/session/v1/login-request", data=bomb, timeout=10,
                          headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})  # fmt: skip

    assert len(bomb) < 100 * 2**10
    assert reply.status_code == 413 and "larger than the local SPCS takes" in reply.json()["message"]


@pytest.mark.parametrize(
    ("path", "size"),
    [("/session/v1/login-request", 65 * 2**10), ("/queries/v1/query-request", 65 * 2**10), ("/session", 65 * 2**10)],
)
def test_bodies_before_a_login_are_small(emulator: tuple[str, LocalSPCS], path: str, size: int) -> None:
    base, _ = emulator

    declared = requests.post(f"{base}{path}", data=b"x" * size, headers={"Content-Type": "application/json"},
                             timeout=10)  # fmt: skip
    chunked = requests.post(f"{base}{path}", data=iter([b"x" * 2**10] * (size // 2**10)),
                            headers={"Content-Type": "application/json"}, timeout=10)  # fmt: skip

    assert declared.status_code == chunked.status_code == 413


def test_sql_text_over_1_mb_is_refused_with_a_snowflake_error(emulator: tuple[str, LocalSPCS]) -> None:
    base, _ = emulator
    with connect(base) as connection, pytest.raises(snowflake.connector.errors.ProgrammingError) as refused:
        connection.cursor().execute("select 1 " + "-- padding\n" * 100_000)

    assert refused.value.errno == 1003 and "Snowflake takes statements of up to 1,048,576 bytes" in str(refused.value)


def test_a_long_statement_never_holds_up_another_client(emulator: tuple[str, LocalSPCS]) -> None:
    base, _ = emulator
    long_sql = "select " + " + ".join(["1"] * 15_000)  # seconds of parsing for sqlglot
    done = threading.Event()

    def parse_it() -> None:
        with connect(base) as connection, pytest.raises(snowflake.connector.errors.Error):
            connection.cursor().execute(long_sql)
        done.set()

    thread = threading.Thread(target=parse_it)
    thread.start()
    latencies = []
    while not done.is_set() and len(latencies) < 20:
        start = time.monotonic()
        assert requests.post(f"{base}/session/v1/login-request", json=LOGIN, timeout=10).json()["success"]
        latencies.append(time.monotonic() - start)
        time.sleep(0.1)
    thread.join(120)

    assert max(latencies) < 2


# --- cancel --------------------------------------------------------------------------------------


def test_cancel_stops_a_running_job_within_seconds(emulator: tuple[str, LocalSPCS]) -> None:
    base, _ = emulator
    with connect(base) as connection:
        errors: list[Exception] = []

        def run_job() -> None:
            try:
                connection.cursor().execute(
                    f"EXECUTE JOB SERVICE IN COMPUTE POOL tutorial_compute_pool NAME=long_job "
                    f"FROM SPECIFICATION $${JOB_SPEC}$$"
                )
            except snowflake.connector.errors.ProgrammingError as error:
                errors.append(error)

        thread = threading.Thread(target=run_job)
        thread.start()
        time.sleep(1)
        start = time.monotonic()
        with connect(base) as other:  # the same session's cancel, as the connector's Ctrl-C sends it
            requests.post(f"{base}/queries/v1/abort-request", json={}, headers=auth(connection.rest.token or ""),
                          timeout=10)  # fmt: skip
            thread.join(10)

            assert time.monotonic() - start < 5 and [getattr(e, "errno", None) for e in errors] == [604]
            [row] = other.cursor().execute("SHOW JOB SERVICES LIKE 'LONG_JOB'").fetchall()
            assert row[1] == "FAILED"


# --- who may talk to it --------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["rebind.attacker.example", "127.0.0.1.attacker.example", "10.0.0.1", ""])
def test_a_request_for_another_host_name_is_refused(emulator: tuple[str, LocalSPCS], host: str) -> None:
    base, _ = emulator

    reply = requests.post(f"{base}/session/v1/login-request", json=LOGIN, headers={"Host": host}, timeout=10)

    assert reply.status_code == 403 and "not a name of the local SPCS" in reply.json()["message"]


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "LOCALHOST:8765", "[::1]:8765"])
def test_loopback_names_are_answered(emulator: tuple[str, LocalSPCS], host: str) -> None:
    base, _ = emulator

    reply = requests.post(f"{base}/session/v1/login-request", json=LOGIN, headers={"Host": host}, timeout=10)

    assert reply.status_code == 200 and reply.json()["success"]


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", '{"data": {"LOGIN_NAME": "tutorial_user", "PASSWORD": "tutorial_password"}}'),
        ("application/x-www-form-urlencoded", "data=x"),
        ("multipart/form-data; boundary=x", "--x--"),
        ("", "{}"),
    ],
)
def test_a_request_a_web_page_can_send_without_asking_is_refused(
    emulator: tuple[str, LocalSPCS], content_type: str, body: str
) -> None:
    base, _ = emulator
    for path in ("/session/v1/login-request", "/queries/v1/query-request", "/session/token-request"):
        reply = requests.post(f"{base}{path}", data=body, headers={"Content-Type": content_type}, timeout=10)

        assert reply.status_code == 415 and "application/json" in reply.json()["message"]


def test_a_peer_outside_the_allowed_networks_is_refused(tmp_path) -> None:
    import ipaddress

    from spcs_local.emulator.guard import Doors

    spcs = LocalSPCS(tmp_path / "spcs")
    only_another = Doors(networks=(ipaddress.ip_network("10.99.0.0/16"),))  # this test's loopback isn't in it
    with serving(spcs, tmp_path / "snowflake", doors=only_another) as base:
        reply = requests.get(f"{base}/healthcheck", timeout=10)

    assert reply.status_code == 403 and "may connect" in reply.json()["message"]


def test_session_tokens_are_random_and_a_client_chosen_database_path_is_ignored(
    emulator: tuple[str, LocalSPCS], tmp_path
) -> None:
    base, _ = emulator
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    data = {**LOGIN["data"], "SESSION_PARAMETERS": {"FAKESNOW_DB_PATH": str(elsewhere), "nop_regexes": [".*"]}}

    tokens = {token_of(base) for _ in range(3)}
    token = requests.post(f"{base}/session/v1/login-request", json={"data": data}, timeout=10).json()["data"]["token"]
    created = requests.post(f"{base}/queries/v1/query-request?requestId={uuid.uuid4()}", headers=auth(token),
                            json={"sqlText": "create database ELSEWHERE_DB"}, timeout=10).json()  # fmt: skip

    assert len(tokens) == 3 and all(len(token) >= 32 for token in tokens)
    assert created["success"] and list(elsewhere.iterdir()) == []


def test_a_querys_result_is_only_its_own_sessions(emulator: tuple[str, LocalSPCS]) -> None:
    base, _ = emulator
    owner, stranger = token_of(base), token_of(base)
    url = f"{base}/queries/v1/query-request?requestId={uuid.uuid4()}"
    asked = requests.post(url, json={"sqlText": "SHOW COMPUTE POOLS"}, headers=auth(owner), timeout=10).json()
    result_url = f"{base}/queries/{asked['data']['queryId']}/result"

    assert requests.get(result_url, headers=auth(owner), timeout=10).json()["success"]
    for headers in (auth(stranger), {}):
        assert requests.get(result_url, headers=headers, timeout=10).json()["code"] == "000709"


def test_sessions_expire_when_idle_and_the_oldest_give_way_past_the_cap() -> None:
    ended: list[str] = []
    sessions: Sessions[str] = Sessions(lambda token, value: ended.append(token), idle=0.2, cap=2)
    sessions.add("a", "first")
    sessions.add("b", "second")
    assert sessions.get("a") == "first"  # a is used: b is now the least recently used

    sessions.add("c", "third")
    assert ended == ["b"] and "c" in sessions
    time.sleep(0.3)
    assert sessions.get("a") is None and ended == ["b", "a"]


# --- stage uploads --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/fs_bucket/TUTORIAL_DB/DATA_SCHEMA/TUTORIAL_STAGE/spec.yaml",
        "/fs_bucket/TUTORIAL_DB/DATA_SCHEMA/TUTORIAL_STAGE/spec.yaml?ticket=guessed",
        "/fs_bucket/TUTORIAL_DB/DATA_SCHEMA/TUTORIAL_STAGE/%2e%2e/%2e%2e/%2e%2e/%2e%2e/spcs/catalog.json",
    ],
)
def test_no_upload_reaches_a_stage_without_a_sessions_ticket(emulator: tuple[str, LocalSPCS], url: str) -> None:
    base, _ = emulator

    reply = requests.put(f"{base}{url}", data=b"spec: {}", timeout=10)

    assert reply.status_code == 403


def test_a_ticket_is_for_its_own_file_and_uploads_are_bounded(emulator: tuple[str, LocalSPCS], tmp_path) -> None:
    base, _ = emulator
    source = tmp_path / "spec.yaml"
    source.write_text("spec: {}\n")
    token = token_of(base)
    requests.post(f"{base}/queries/v1/query-request?requestId={uuid.uuid4()}", headers=auth(token),
                  json={"sqlText": "create or replace stage tickets"}, timeout=10)  # fmt: skip
    put = requests.post(f"{base}/queries/v1/query-request?requestId={uuid.uuid4()}", headers=auth(token), json={
        "sqlText": f"put file://{source} @tickets auto_compress=false"}, timeout=10).json()  # fmt: skip
    presigned = put["data"]["stageInfo"]["presignedUrl"]
    ticket = presigned.split("?ticket=")[1]

    other_file = presigned.replace("/spec.yaml?", "/other.yaml?")
    assert requests.put(other_file, data=b"x", timeout=10).status_code == 403
    assert declares(presigned, 2 * 2**30) == 413  # refused before a byte of it is read
    assert requests.put(presigned, data=b"spec: {}\n", timeout=10).status_code == 200
    assert ticket not in requests.get(f"{base}/healthcheck", timeout=10).text


def declares(url: str, length: int) -> int:
    """The status of a PUT that says it will send `length` bytes, and sends none."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.putrequest("PUT", f"{parts.path}?{parts.query}")
        connection.putheader("Content-Length", str(length))
        connection.endheaders()
        return connection.getresponse().status
    finally:
        connection.close()


# --- the emulator's own process -------------------------------------------------------------------


def header_of(port: int, size: int) -> int | str:
    """The answer to a request with a header of `size` bytes: a status, or "refused" when it is cut off."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(b"GET /healthcheck HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * size + b"\r\n\r\n")
            answer = sock.recv(100)
        except ConnectionError:
            return "refused"
    return int(answer.split()[1]) if answer else "refused"


class Forever202(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.answer()

    def do_GET(self) -> None:
        self.answer()

    def answer(self) -> None:
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_the_emulator_stops_within_seconds_with_a_query_in_flight_and_logs_no_strangers_mistakes(tmp_path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Forever202)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port, log = free_port(), tmp_path / "emulator.log"
    args = [sys.executable, "-m", "spcs_local.emulator", "--port", str(port), "--data-dir", str(tmp_path / "data"),
            "--external-service", f"echo_service:echoendpoint=http://127.0.0.1:{server.server_address[1]}"]  # fmt: skip
    with log.open("w") as output:
        emulator = subprocess.Popen(args, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/healthcheck", emulator)
        for body, headers in ((b"\x00garbage", {}), (b"{", {"Content-Type": "application/json"}),
                              (gzip.compress(b"x" * 2**20), {"Content-Encoding": "gzip"})):  # fmt: skip
            requests.post(f"{base}/session/v1/login-request", data=body, headers=headers, timeout=10)
            requests.post(f"{base}/queries/v1/query-request", data=body, headers=headers, timeout=10)
        assert header_of(port, 2**20) in ("refused", 400, 431)  # headers are bounded too
        assert requests.get(f"{base}/healthcheck", timeout=10).status_code == 200
        connection = connect(base)
        connection.cursor().execute("CREATE FUNCTION forever (x varchar) RETURNS varchar SERVICE=echo_service "
                                    "ENDPOINT=echoendpoint AS '/echo'")  # fmt: skip
        errors: list[Exception] = []
        threading.Thread(target=run_into, args=(errors, connection, "select forever('a')"), daemon=True).start()
        time.sleep(1)
        start = time.monotonic()
        emulator.send_signal(signal.SIGTERM)
        emulator.wait(15)
        stopped = time.monotonic() - start
    finally:
        if emulator.poll() is None:
            os.kill(emulator.pid, signal.SIGKILL)
        server.shutdown()
        server.server_close()

    assert stopped < 5
    assert "Traceback" not in log.read_text()


def test_a_drop_during_the_start_leaves_nothing_running(tmp_path) -> None:
    backend = FakeBackend(start_seconds=1.0)
    spcs = LocalSPCS(tmp_path / "spcs", backend)
    spcs.with_pool_and_images("my_echo_service_image")
    spec = (ROOT / "echo-service" / "echo_spec.yaml").read_text()
    create = f"CREATE SERVICE echo_service IN COMPUTE POOL tutorial_compute_pool FROM SPECIFICATION $${spec}$$"

    spcs.sql(create)
    spcs.sql("DROP SERVICE echo_service")  # while the start pulls and creates
    spcs.sql(create)  # the same name again, another service
    assert spcs.value("SELECT SYSTEM$WAIT_FOR_SERVICES(30, 'echo_service')") == "OK"
    time.sleep(1.5)  # the first start's end

    assert list(backend.running) == [spcs.catalog.services["TUTORIAL_DB.DATA_SCHEMA.ECHO_SERVICE"].instance_key(0)]


def test_one_local_spcs_per_local_dir_whatever_the_ports(tmp_path) -> None:
    if shutil.which("docker-registry") is None:
        if os.getenv("SPCS_REQUIRE_DOCKER") == "1":
            pytest.fail("docker-registry is missing, and SPCS_REQUIRE_DOCKER=1 requires it")
        pytest.skip("docker-registry is not installed (make local-up installs it)")
    local = [sys.executable, "-m", "spcs_local.local"]
    first, second = (free_port(), free_port()), (free_port(), free_port())

    def up(ports: tuple[int, int]) -> subprocess.CompletedProcess:
        return subprocess.run([*local, "up", "--local-dir", str(tmp_path), "--port", str(ports[0]),
                               "--registry-port", str(ports[1])], cwd=ROOT, capture_output=True, text=True,
                              timeout=120)  # fmt: skip

    try:
        started = up(first)
        pids = sorted(pidfile.read_text() for pidfile in (tmp_path / "run").glob("*.pid"))
        again = up(second)  # other ports, as a `make setup` without the EMULATOR_PORT that started it

        assert started.returncode == again.returncode == 0, started.stderr + again.stderr
        assert f"runs on 127.0.0.1:{first[0]}" in again.stdout and f"not on {second[0]}" in again.stdout
        assert f"door is 127.0.0.1:{first[1]}, in the emulator, not on {second[1]}" in again.stdout
        assert sorted(pidfile.read_text() for pidfile in (tmp_path / "run").glob("*.pid")) == pids
        assert f"port = {first[0]}" in (tmp_path / "snowflake-home" / "connections.toml").read_text()
    finally:
        stopped = subprocess.run([*local, "down", "--local-dir", str(tmp_path)], cwd=ROOT, capture_output=True,
                                 text=True, timeout=120)  # fmt: skip

    assert stopped.returncode == 0 and stopped.stdout.count("stopped the") == 2
    for pid in (int(text.split()[0]) for text in pids):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
