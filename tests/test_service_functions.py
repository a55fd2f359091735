"""Service functions, called as Snowflake calls them: the real connector sends SQL to the emulator, which
sends the rows in batches to a real HTTP server on loopback that counts them, and fails on purpose."""

import http.server
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import snowflake.connector
import snowflake.connector.errors

from spcs_local.emulator import client_env, connection_params
from spcs_local.emulator.catalog import ObjectName, ServiceFunction
from spcs_local.emulator.service_functions import CallContext, Caller

from .fakes import LocalSPCS, serving

HANG_SECONDS = 5
SLOW_SECONDS = 3
BATCH_ID = "sf-external-function-query-batch-id"


@dataclass
class Requests:
    """What the test service received: one entry per request."""

    seen: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def to(self, path: str) -> list[dict]:
        return [request for request in self.seen if request["path"] == path]


class FakeService(http.server.BaseHTTPRequestHandler):
    """Echoes like the Echo service on /echo; each other path misbehaves as it is named."""

    requests: Requests

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.requests.lock:
            self.requests.seen.append(
                {"path": self.path, "method": "POST", "headers": dict(self.headers), "body": body}
            )
            tries = sum(1 for r in self.requests.seen if r["headers"].get(BATCH_ID) == self.headers.get(BATCH_ID))
        rows = body["data"]
        echoed = [[n, None if v is None else f"Bob said {v}"] for n, v, *_ in rows]
        if self.path == "/flaky" and tries <= 2:
            self.answer(503, {"error": "not yet"})
        elif self.path == "/always-503":
            self.answer(503, {"error": "never"})
        elif self.path == "/bad-request":
            self.answer(400, {"error": "no"})
        elif self.path == "/wrong-count":
            self.answer(200, {"data": echoed[:-1]})
        elif self.path == "/wrong-numbers":
            self.answer(200, {"data": [[n + 1, v] for n, v in echoed]})
        elif self.path == "/not-json":
            self.answer(200, b"<html>")
        elif self.path == "/forever-202":
            self.answer(202, {})
        elif self.path == "/hang":
            time.sleep(HANG_SECONDS)
            self.answer(200, {"data": echoed})
        elif self.path == "/drip":  # an answer a byte at a time: each read is quick, the whole is not
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            for _ in range(HANG_SECONDS * 4):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.25)
        elif self.path == "/accepted" and tries == 1:
            self.answer(202, {})
        elif self.path == "/slow":
            time.sleep(SLOW_SECONDS)
            self.answer(200, {"data": echoed})
        elif self.path == "/cut-short" and tries == 1:  # promises more than it sends, then closes
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b'{"data": [[0, "Bob')
            self.close_connection = True
        elif self.path == "/huge":
            self.answer(200, b'{"data": [[0, "' + b"x" * (64 * 2**20) + b'"]]}')
        elif self.path == "/long-text":
            self.answer(200, {"data": [[n, "y" * (20 * 2**20)] for n, *_ in rows]})
        elif self.path == "/typed":
            self.answer(200, {"data": [[n, json.loads(v)] for n, v in rows]})
        else:
            self.answer(200, {"data": echoed})

    def do_GET(self) -> None:  # Snowflake polls a 202 with GET and the same batch id
        if self.path == "/forever-202":
            self.answer(202, {})
            return
        batch_id = self.headers.get(BATCH_ID)
        with self.requests.lock:
            self.requests.seen.append({"path": self.path, "method": "GET", "headers": dict(self.headers), "body": None})
            posted = [r for r in self.requests.seen if r["method"] == "POST" and r["headers"].get(BATCH_ID) == batch_id]
        rows = posted[0]["body"]["data"]
        self.answer(200, {"data": [[n, f"Bob said {v}"] for n, v in rows]})

    def answer(self, status: int, body: object) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[snowflake.connector.SnowflakeConnection, Requests]]:
    """A connection to the emulator, where `test_service` (endpoint `ep`) is the test server above."""
    requests = Requests()
    handler = type("Handler", (FakeService,), {"requests": requests})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    directory = tmp_path_factory.mktemp("service-functions")
    spcs = LocalSPCS(directory / "spcs")
    url = f"http://127.0.0.1:{server.server_address[1]}"
    for name in ("TEST_SERVICE", "SLOW_SERVICE"):
        spcs.catalog.register_external_service(ObjectName("TUTORIAL_DB", "DATA_SCHEMA", name), {"ep": url})
    try:
        with serving(spcs, directory / "snowflake") as base:
            port = int(base.rsplit(":", 1)[1])
            with snowflake.connector.connect(**connection_params(client_env(port))) as connection:
                yield connection, requests
    finally:
        server.shutdown()
        server.server_close()


def function(connection: snowflake.connector.SnowflakeConnection, name: str, path: str, options: str = "",
             arguments: str = "x varchar", returns: str = "varchar",
             service: str = "test_service") -> None:  # fmt: skip
    connection.cursor().execute(
        f"CREATE OR REPLACE FUNCTION {name} ({arguments}) RETURNS {returns} SERVICE={service} ENDPOINT=ep "
        f"{options} AS '{path}'"
    )


def query(connection: snowflake.connector.SnowflakeConnection, sql: str) -> list[tuple]:
    return connection.cursor().execute(sql).fetchall()


def test_the_tutorials_query_sends_one_batch_with_snowflakes_headers(service) -> None:
    connection, requests = service
    function(connection, "my_echo_udf", "/echo")
    query(connection, "CREATE OR REPLACE TABLE messages (message_text VARCHAR) "
                      "AS (SELECT * FROM (VALUES ('Thank you'), ('Hello'), ('Hello World')))")  # fmt: skip
    before = len(requests.to("/echo"))

    rows = query(connection, "SELECT my_echo_udf(message_text) FROM messages")

    assert rows == [("Bob said Thank you",), ("Bob said Hello",), ("Bob said Hello World",)]
    [batch] = requests.to("/echo")[before:]
    assert batch["body"] == {"data": [[0, "Thank you"], [1, "Hello"], [2, "Hello World"]]}
    headers = {name.lower(): value for name, value in batch["headers"].items()}
    assert headers["content-type"] == "application/json"
    assert (headers["sf-external-function-format"], headers["sf-external-function-format-version"]) == ("json", "1.0")
    assert headers[BATCH_ID].startswith(headers["sf-external-function-current-query-id"])
    assert (headers["sf-external-function-name"], headers["sf-external-function-signature"],
            headers["sf-external-function-return-type"]) == ("MY_ECHO_UDF", "(X VARCHAR)", "VARCHAR")  # fmt: skip


def test_ten_thousand_rows_come_back_in_order_in_batches_of_max_batch_rows(service) -> None:
    connection, requests = service
    function(connection, "echo_100", "/echo", "MAX_BATCH_ROWS = 100")
    before = len(requests.seen)

    rows = query(connection, "SELECT seq4() AS n, echo_100(seq4()::varchar) FROM table(generator(rowcount => 10000)) "
                             "ORDER BY n")  # fmt: skip

    assert rows == [(n, f"Bob said {n}") for n in range(10_000)]
    batches = requests.seen[before:]
    assert sum(len(b["body"]["data"]) for b in batches) == 10_000
    assert max(len(b["body"]["data"]) for b in batches) == 100
    assert all([row[0] for row in b["body"]["data"]] == list(range(len(b["body"]["data"]))) for b in batches)
    batch_ids = [b["headers"][BATCH_ID] for b in batches]
    assert len(set(batch_ids)) == len(batch_ids)


def test_null_goes_as_json_null_and_comes_back_as_sql_null(service) -> None:
    connection, requests = service
    function(connection, "echo_nulls", "/echo")
    before = len(requests.seen)

    rows = query(connection, "SELECT v, echo_nulls(v) FROM (VALUES ('a'), (NULL), ('c')) AS t(v)")

    assert rows == [("a", "Bob said a"), (None, None), ("c", "Bob said c")]
    assert requests.seen[before]["body"]["data"] == [[0, "a"], [1, None], [2, "c"]]


def test_variant_arguments_go_as_json_values_beside_plain_ones(service) -> None:
    connection, requests = service
    function(connection, "echo_variant", "/echo", arguments="v variant, n number")
    before = len(requests.seen)

    query(connection, """SELECT echo_variant(parse_json('{"a": [1, null]}'), 7), echo_variant(NULL, NULL)""")

    assert requests.seen[before]["body"]["data"] == [[0, {"a": [1, None]}, 7]]
    assert requests.seen[before + 1]["body"]["data"] == [[0, None, None]]


def test_a_call_works_in_where_and_beside_other_columns(service) -> None:
    connection, _ = service
    function(connection, "echo_where", "/echo")

    rows = query(connection, "SELECT v, 1 AS one FROM (VALUES ('a'), ('b')) AS t(v) WHERE echo_where(v) = 'Bob said b'")

    assert rows == [("b", 1)]


def test_503_twice_then_200_is_retried_with_the_same_batch_id(service) -> None:
    connection, requests = service
    function(connection, "flaky", "/flaky")
    before = len(requests.to("/flaky"))

    assert query(connection, "SELECT flaky('x')") == [("Bob said x",)]

    tries = requests.to("/flaky")[before:]
    assert len(tries) == 3
    assert len({t["headers"][BATCH_ID] for t in tries}) == 1


@pytest.mark.parametrize(
    ("path", "options", "problem"),
    [
        ("/always-503", "MAX_BATCH_RETRIES = 2", "the service answered HTTP 503 to batch"),
        ("/bad-request", "", "the service answered HTTP 400 to batch"),
        ("/wrong-count", "", "the service answered 2 rows for a batch of 3"),
        ("/wrong-numbers", "", 'row 0 of the reply is [1,"Bob said a"], not [0, value]'),
        ("/not-json", "", "the service's reply is not JSON"),
        ("/hang", "BATCH_TIMEOUT_SECS = 1", "timed out after 1 s"),
        ("/drip", "BATCH_TIMEOUT_SECS = 1", "timed out after 1 s"),
    ],
    ids=["retries-run-out", "not-retried", "wrong-row-count", "wrong-row-numbers", "not-json", "timeout", "drip"],
)
def test_a_failing_batch_fails_the_query_naming_the_function(service, path: str, options: str, problem: str) -> None:
    connection, requests = service
    name = "fails_" + path.strip("/").replace("-", "_")
    function(connection, name, path, options)
    before = len(requests.to(path))
    start = time.monotonic()

    with pytest.raises(snowflake.connector.errors.ProgrammingError) as failed:
        query(connection, f"SELECT {name}(v) FROM (VALUES ('a'), ('b'), ('c')) AS t(v)")

    assert f"Service function {name.upper()} failed: " in failed.value.msg and problem in failed.value.msg
    assert time.monotonic() - start < HANG_SECONDS
    if path == "/always-503":
        assert len(requests.to(path)) - before == 3  # the first try and two retries


@pytest.mark.parametrize("path", ["/always-503", "/hang"])
def test_return_null_makes_a_failed_batch_null(service, path: str) -> None:
    connection, _ = service
    name = "nulls_" + path.strip("/").replace("-", "_")
    function(connection, name, path, "MAX_BATCH_RETRIES = 1 BATCH_TIMEOUT_SECS = 1 ON_BATCH_FAILURE = RETURN_NULL")

    assert query(connection, f"SELECT {name}('x')") == [(None,)]


def test_202_is_polled_with_get_until_the_answer_is_ready(service) -> None:
    connection, requests = service
    function(connection, "polled", "/accepted")

    assert query(connection, "SELECT polled('x')") == [("Bob said x",)]
    assert [r["method"] for r in requests.to("/accepted")][-2:] == ["POST", "GET"]


@pytest.mark.parametrize(
    ("returns", "sent", "expected"),
    [("number", "'42'", 42), ("varchar", "'42'", "42"), ("boolean", "'true'", True), ("float", "'1.5'", 1.5),
     ("varchar", "'{\"a\": 1}'", '{"a": 1}')],
)  # fmt: skip
def test_results_are_cast_to_the_return_type(service, returns: str, sent: str, expected: object) -> None:
    connection, _ = service
    name = f"typed_{returns}"
    function(connection, name, "/typed", returns=returns)

    assert query(connection, f"SELECT {name}({sent})") == [(expected,)]


def test_a_result_that_is_not_of_the_return_type_fails_the_query(service) -> None:
    connection, _ = service
    function(connection, "typed_number", "/typed", returns="number")

    with pytest.raises(snowflake.connector.errors.ProgrammingError, match='answered "x", not a NUMBER'):
        query(connection, "SELECT typed_number('\"x\"')")


def test_context_headers_carry_the_sessions_context(service) -> None:
    connection, requests = service
    function(connection, "with_context", "/echo", "CONTEXT_HEADERS = (CURRENT_USER, CURRENT_ROLE, CURRENT_DATABASE)")

    query(connection, "SELECT with_context('x')")

    headers = requests.to("/echo")[-1]["headers"]
    assert (headers["sf-context-current-user"], headers["sf-context-current-role"],
            headers["sf-context-current-database"]) == ("tutorial_user", "TEST_ROLE", "TUTORIAL_DB")  # fmt: skip


# --- bounds, cancel and fairness --------------------------------------------------------------------


@pytest.mark.parametrize(
    "cancel",
    [
        lambda connection, base: connection.cursor().execute("select system$cancel_all_queries(0)"),
        lambda connection, base: requests_post(base, "/queries/v1/abort-request", connection.rest.token),
        lambda connection, base: requests_post(base, "/session?delete=true", connection.rest.token),
    ],
    ids=["cancel_all_queries", "abort-request", "closing-the-session"],
)
def test_cancel_ends_a_query_waiting_on_a_service_that_answers_202_forever(service, cancel) -> None:
    connection, _ = service
    base = f"http://{connection.host}:{connection.port}"
    function(connection, "forever", "/forever-202")
    with snowflake.connector.connect(**connection_params(client_env(connection.port))) as waiting:
        errors: list[Exception] = []
        thread = threading.Thread(target=lambda: run_into(errors, waiting, "select forever('a')"))
        thread.start()
        time.sleep(1)
        start = time.monotonic()
        cancel(waiting, base)
        thread.join(10)

        assert not thread.is_alive() and time.monotonic() - start < 5
        assert [getattr(error, "errno", None) for error in errors] in ([604], [390104])  # cancelled, or logged out


def test_the_connectors_timeout_cancels_a_service_function_wait(service) -> None:
    connection, _ = service
    function(connection, "forever", "/forever-202")
    start = time.monotonic()

    with pytest.raises(snowflake.connector.errors.ProgrammingError) as cancelled:
        connection.cursor().execute("select forever('a')", timeout=1)

    assert cancelled.value.errno == 604 and time.monotonic() - start < 6


def test_a_slow_service_holds_back_only_its_own_calls(service) -> None:
    connection, _ = service
    function(connection, "slow", "/slow", service="slow_service")
    function(connection, "fast", "/echo")
    port = connection.port
    errors: list[Exception] = []
    slow_queries = [
        threading.Thread(target=lambda: run_into(errors, None, "select slow('a')", port)) for _ in range(12)
    ]
    for thread in slow_queries:
        thread.start()
    time.sleep(0.5)  # the slow service's batches fill its share
    start = time.monotonic()

    assert query(connection, "select fast('a')") == [("Bob said a",)]
    assert time.monotonic() - start < 2
    for thread in slow_queries:
        thread.join(60)
    assert errors == []


def test_a_reply_cut_short_is_retried_as_a_network_error(service) -> None:
    connection, requests = service
    function(connection, "cut_short", "/cut-short")

    assert query(connection, "select cut_short('a')") == [("Bob said a",)]
    assert len(requests.to("/cut-short")) == 2


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("/huge", "Service function TOO_BIG failed: the service's reply is larger than 64 MiB"),
        ("/long-text", "Service function TOO_BIG failed: the service answered a value of 20,971,520 bytes, over the "
                       "16,777,216 bytes a VARCHAR holds"),
    ],
)  # fmt: skip
def test_replies_beyond_snowflakes_sizes_fail_the_query_naming_the_function(service, path: str, problem: str) -> None:
    connection, _ = service
    function(connection, "too_big", path)

    with pytest.raises(snowflake.connector.errors.ProgrammingError, match=problem):
        query(connection, "select too_big('a')")


def run_into(errors: list[Exception], connection: snowflake.connector.SnowflakeConnection | None, sql: str,
             port: int = 0) -> None:  # fmt: skip
    """Run a statement, on a connection of its own without one; what it raises goes to `errors`."""
    try:
        if connection is None:
            with snowflake.connector.connect(**connection_params(client_env(port))) as own:
                own.cursor().execute(sql).fetchall()
        else:
            connection.cursor().execute(sql).fetchall()
    except Exception as error:
        errors.append(error)


def requests_post(base: str, path: str, token: str | None) -> None:
    import requests

    requests.post(f"{base}{path}", json={}, headers={"Authorization": f'Snowflake Token="{token}"'}, timeout=10)


def test_batches_take_turns_among_instances_and_one_gone_is_retried_on_another() -> None:
    """Two instances of a service, each a real HTTP server: the batches of a call are spread over both, and
    when one goes away, its batches go to the other."""
    received = [Requests(), Requests()]
    servers = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (FakeService,), {"requests": r}))
               for r in received]  # fmt: skip
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    urls = [f"http://127.0.0.1:{server.server_address[1]}" for server in servers]
    caller = Caller(lambda function: urls)  # both READY, as far as the local SPCS last looked
    service = "TUTORIAL_DB.DATA_SCHEMA.ECHO_SERVICE"
    function = ServiceFunction("TUTORIAL_DB", "DATA_SCHEMA", "MY_ECHO_UDF", [("x", "VARCHAR")], "VARCHAR", service,
                               "ep", "/echo", "", max_batch_rows=10)  # fmt: skip
    context = CallContext("query", "TUTORIAL_USER", "TEST_ROLE", None, None, None, "LOCALTEST")
    rows = [[f"row {n}"] for n in range(100)]
    try:
        caller.open(context, {"query:0": function})
        assert caller.invoke("query:0", rows) == [f"Bob said row {n}" for n in range(100)]
        assert [len(r.to("/echo")) for r in received] == [5, 5]

        servers[1].shutdown()
        servers[1].server_close()
        assert caller.invoke("query:0", rows) == [f"Bob said row {n}" for n in range(100)]
        assert [len(r.to("/echo")) for r in received] == [15, 5]
    finally:
        caller.shutdown()
        servers[0].shutdown()
        servers[0].server_close()
