"""Tutorial 1's Echo service, spoken to over HTTP as Snowflake and a browser speak to it."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spcs_local.processes import free_port, stop, wait_for_http

from .conftest import ECHO_SERVICE, start_echo_service


def call_echo(base: str, body: object) -> requests.Response:
    return requests.post(f"{base}/echo", json=body, timeout=10)


def test_echo_answers_each_row_with_its_row_number(echo_url: str) -> None:
    reply = call_echo(echo_url, {"data": [[0, "Thank you"], [1, "Hello"], [2, "Hello World"]]})

    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == {"data": [[0, "Bob said Thank you"], [1, "Bob said Hello"], [2, "Bob said Hello World"]]}


def test_echo_keeps_row_numbers_and_order_as_sent(echo_url: str) -> None:
    reply = call_echo(echo_url, {"data": [[7, "c"], [3, "a"], [5, "b"]]})

    assert reply.json()["data"] == [[7, "Bob said c"], [3, "Bob said a"], [5, "Bob said b"]]


def test_echo_null_stays_null_and_other_values_show_as_json(echo_url: str) -> None:
    body = {"data": [[0, None], [1, 42], [2, 1.5], [3, True], [4, {"a": [1, "x"]}], [5, "日本語 ✓"]]}

    assert call_echo(echo_url, body).json()["data"] == [
        [0, None],
        [1, "Bob said 42"],
        [2, "Bob said 1.5"],
        [3, "Bob said true"],
        [4, 'Bob said {"a":[1,"x"]}'],
        [5, "Bob said 日本語 ✓"],
    ]


def test_echo_empty_batch(echo_url: str) -> None:
    assert call_echo(echo_url, {"data": []}).json() == {"data": []}


def test_echo_ten_thousand_rows(echo_url: str) -> None:
    rows = [[i, f"message {i}"] for i in range(10_000)]

    data = call_echo(echo_url, {"data": rows}).json()["data"]

    assert data == [[i, f"Bob said message {i}"] for i in range(10_000)]


def test_healthcheck_is_the_readiness_probe(echo_url: str) -> None:
    reply = requests.get(f"{echo_url}/healthcheck", timeout=5)

    assert (reply.status_code, reply.text) == (200, "I'm ready!")


def test_ui_get_shows_the_form(echo_url: str) -> None:
    page = requests.get(f"{echo_url}/ui", timeout=5)

    assert page.status_code == 200
    assert '<input type="text" id="input" name="input">' in page.text


def test_ui_post_shows_input_and_output(echo_url: str) -> None:
    page = requests.post(f"{echo_url}/ui", data={"input": "Hello"}, timeout=5)

    assert "Hello" in page.text
    assert "Bob said Hello" in page.text


def test_ui_shows_injected_html_escaped(echo_url: str) -> None:
    page = requests.post(f"{echo_url}/ui", data={"input": "<script>alert(1)</script>"}, timeout=5)

    assert "<script>" not in page.text
    assert "Bob said &lt;script&gt;alert(1)&lt;/script&gt;" in page.text


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"not json", "not valid JSON"),
        (b"[[0, 1]]", "must be a JSON object"),
        (b'{"rows": []}', 'no "data" key'),
        (b'{"data": {"0": "a"}}', '"data" must be a list'),
        (b'{"data": ["hello"]}', "row 0 must be a list"),
        (b'{"data": [[0, "a"], [1]]}', "row 1 must be a list"),
        (b'{"data": [[0, "a", "b"]]}', "row 0 must be a list [row_number, value]"),  # one argument, one value
        (b'{"data": [[0, "a"], [1, "b", null, 3]]}', "row 1 must be a list [row_number, value]"),
        (b'{"data": [["zero", "a"]]}', "row 0 has a row number that is not an integer"),
        (b'{"data": [[true, "a"]]}', "row 0 has a row number that is not an integer"),
        (b'{"data": [[1.5, "a"]]}', "row 0 has a row number that is not an integer"),
        (b'{"data": [[123456789012345678901234, "a"]]}', "a row number is beyond 64 bits"),
    ],
)
def test_echo_bad_input_is_a_400_naming_the_problem(echo_url: str, body: bytes, problem: str) -> None:
    reply = requests.post(f"{echo_url}/echo", data=body, headers={"Content-Type": "application/json"}, timeout=5)

    assert reply.status_code == 400
    assert problem in reply.json()["error"]


@pytest.mark.parametrize(("method", "path"), [("GET", "/echo"), ("POST", "/healthcheck"), ("PUT", "/ui")])
def test_wrong_method_is_a_405(echo_url: str, method: str, path: str) -> None:
    assert requests.request(method, f"{echo_url}{path}", timeout=5).status_code == 405


@pytest.mark.parametrize("path", ["/healthcheck", "/ui"])
def test_head_answers_as_get_does_without_a_body(echo_url: str, path: str) -> None:
    got, head = requests.get(f"{echo_url}{path}", timeout=5), requests.head(f"{echo_url}{path}", timeout=5)

    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.headers["content-length"] == str(len(got.content))


def nested(depth: int) -> str:
    return "[" * depth + '"x"' + "]" * depth


@pytest.mark.parametrize("depth", [254, 256, 300, 1023, 1024, 5000])
def test_a_deeply_nested_value_is_echoed_or_a_400_never_a_500(echo_url: str, depth: int) -> None:
    body = '{"data": [[0, ' + nested(depth) + "]]}"

    reply = requests.post(f"{echo_url}/echo", data=body, timeout=10)

    assert reply.status_code in (200, 400), reply.text
    assert reply.status_code == 200 or "nested" in reply.json()["error"]


def test_integers_beyond_64_bits_are_echoed_exactly(echo_url: str) -> None:
    body = '{"data": [[0, 12345678901234567890123], [1, -99999999999999999999], [2, {"n": 18446744073709551616}]]}'

    reply = requests.post(f"{echo_url}/echo", data=body, timeout=10)

    assert reply.json()["data"] == [
        [0, "Bob said 12345678901234567890123"],
        [1, "Bob said -99999999999999999999"],
        [2, 'Bob said {"n":18446744073709551616}'],
    ]


@pytest.fixture(scope="module")
def small_echo() -> Iterator[tuple[str, int]]:
    """An Echo service with a 1 KiB body limit and 2 s for a whole request, as (base URL, port)."""
    port = free_port()
    limits = {"SERVER_MAX_BODY_BYTES": "1024", "SERVER_REQUEST_TIMEOUT_SECONDS": "2", "SERVER_WORKERS": "1"}
    with start_echo_service(port, limits):
        yield f"http://127.0.0.1:{port}", port


def exchange(port: int, request: bytes, wait: float = 10) -> bytes:
    """Send raw bytes, then read until the server closes the connection (or `wait` runs out)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as connection:
        connection.sendall(request)
        reply = b""
        while chunk := connection.recv(65536):
            reply += chunk
        return reply


def test_pipelined_requests_on_one_connection_get_whole_replies_in_order(small_echo: tuple[str, int]) -> None:
    _, port = small_echo
    request = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
    bodies = [b'{"data": [[0, "first"]]}', b'{"data": [[0, "second"]]}']
    closing = b"GET /healthcheck HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

    reply = exchange(port, b"".join(request % (len(body), body) for body in bodies) + closing)

    assert reply.count(b"HTTP/1.1 200 OK\r\n") == 3
    assert reply.index(b" said first") < reply.index(b" said second") < reply.index(b"I'm ready!")
    assert reply.endswith(b"I'm ready!")


def test_a_body_over_the_limit_is_a_413_before_it_is_read(small_echo: tuple[str, int]) -> None:
    _, port = small_echo
    # It claims a gigabyte and sends 20 bytes: the answer comes without waiting for the rest.
    head = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n"

    reply = exchange(port, head + b'{"data": [[0, "a"]]}')

    assert reply.startswith(b"HTTP/1.1 413 ")
    assert b'"error":"body is larger than 1024 bytes (SERVER_MAX_BODY_BYTES)"' in reply


def test_a_chunked_body_over_the_limit_is_a_413(small_echo: tuple[str, int]) -> None:
    base, _ = small_echo
    chunks = (b'{"data": [[0, "' + b"x" * 600 + b'"]]}' for _ in range(4))

    reply = requests.post(f"{base}/echo", data=chunks, timeout=10)

    assert (reply.status_code, reply.json()) == (
        413,
        {"error": "body is larger than 1024 bytes (SERVER_MAX_BODY_BYTES)"},
    )


def test_headers_over_64_kib_are_a_4xx(small_echo: tuple[str, int]) -> None:
    _, port = small_echo
    head = b"GET /healthcheck HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"a" * 100_000 + b"\r\n\r\n"

    reply = exchange(port, head)

    assert reply.startswith(b"HTTP/1.1 400 ") and b"headers are larger than 65536 bytes" in reply


@pytest.mark.parametrize(
    "request_bytes",
    [b"", b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{", b"GET /healthcheck HTTP/1.1\r\nHo"],
    ids=["nothing", "half a body", "half the headers"],
)
def test_a_connection_that_stalls_is_closed(small_echo: tuple[str, int], request_bytes: bytes) -> None:
    _, port = small_echo

    reply = exchange(port, request_bytes, wait=30)  # a closed connection reads as the end of the reply

    assert not reply.startswith(b"HTTP/1.1 2")


def test_sigterm_stops_a_busy_server_within_two_seconds() -> None:
    port = free_port()
    env = {"SERVER_HOST": "127.0.0.1", "SERVER_PORT": str(port)}
    server = subprocess.Popen(ECHO_SERVICE, env={**os.environ, **env})
    rows = b"".join(b'[0, "' + b"x" * 90 + b'"], ' for _ in range(10_000))  # about 1 MB of rows

    def big_body() -> Iterator[bytes]:  # 300 MB of valid rows
        yield b'{"data": ['
        for _ in range(300):
            yield rows
        yield b'[0, "x"]]}'

    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthcheck", server)
        sender = threading.Thread(target=lambda: post_quietly(f"http://127.0.0.1:{port}/echo", big_body()), daemon=True)
        sender.start()
        time.sleep(1)  # the worker is reading and parsing
        server.send_signal(signal.SIGTERM)

        assert server.wait(timeout=2) == 0
    finally:
        stop(server)


def post_quietly(url: str, body: Iterator[bytes]) -> None:
    with contextlib.suppress(requests.RequestException):  # the server goes away mid-body, as the test wants
        requests.post(url, data=body, timeout=30)


def test_character_name_and_server_port_are_honoured() -> None:
    port = free_port()
    with start_echo_service(port, {"CHARACTER_NAME": "Alice"}):
        reply = call_echo(f"http://127.0.0.1:{port}", {"data": [[0, "hi"]]})

    assert reply.json() == {"data": [[0, "Alice said hi"]]}


def test_logs_one_info_line_per_batch_in_the_tutorial_format(tmp_path) -> None:
    port, log = free_port(), tmp_path / "stdout.log"
    with log.open("w") as stdout, start_echo_service(port, {"CHARACTER_NAME": "Bob"}, stdout=stdout):
        call_echo(f"http://127.0.0.1:{port}", {"data": [[0, "private text"], [1, "b"]]})
    lines = log.read_text().splitlines()

    batch_lines = [line for line in lines if line.startswith("echo-service [")]
    assert len(batch_lines) == 1
    assert batch_lines[0].endswith("] [INFO] Received 2 rows")
    assert not any("private text" in line for line in lines)


def test_sigterm_stops_it_within_two_seconds() -> None:
    port = free_port()
    env = {"SERVER_HOST": "127.0.0.1", "SERVER_PORT": str(port)}
    server = subprocess.Popen(ECHO_SERVICE, env={**os.environ, **env})
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthcheck", server)
        idle = requests.Session()  # a kept-alive connection must not hold the shutdown up
        idle.get(f"http://127.0.0.1:{port}/healthcheck", timeout=5)
        server.send_signal(signal.SIGTERM)

        assert server.wait(timeout=2) == 0
    finally:
        stop(server)


# Rows as Snowflake sends them, and the many ways a body can be wrong: integers of any size, values nested
# up to past orjson's limits. `make test-long` runs 10 times as many (the "long" profile in conftest.py).
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=5,
)
good_rows = st.lists(st.tuples(st.integers(0, 10**6), json_values).map(list), max_size=20)
bodies = st.one_of(
    good_rows.map(lambda rows: {"data": rows}),
    json_values.map(lambda value: {"data": value}),
    st.lists(json_values, max_size=5).map(lambda rows: {"data": rows}),
    json_values,
).map(json.dumps)
deep_bodies = st.integers(1, 1100).map(lambda depth: '{"data": [[0, ' + "[" * depth + "1" + "]" * depth + "]]}")


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(bodies, deep_bodies))
def test_no_generated_body_gets_a_5xx(echo_url: str, body: str) -> None:
    reply = requests.post(f"{echo_url}/echo", data=body, timeout=10)

    assert reply.status_code in (200, 400), reply.text
    if reply.status_code == 200:
        rows = json.loads(body)["data"]
        assert [row[0] for row in reply.json()["data"]] == [row[0] for row in rows]
        for [_, value], [_, echoed] in zip(rows, reply.json()["data"], strict=True):
            if type(value) is int:
                assert echoed == f"Bob said {value}"  # exactly, however large
    else:
        assert reply.json()["error"]


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200))
def test_no_raw_bytes_get_a_5xx(echo_url: str, raw: bytes) -> None:
    reply = requests.post(f"{echo_url}/echo", data=raw, timeout=5)

    assert reply.status_code in (200, 400)


@pytest.mark.parametrize(("name", "value"), [("SERVER_PORT", "abc"), ("SERVER_WORKERS", "0")])
def test_a_bad_number_in_the_environment_is_one_line_and_exit_1(name: str, value: str) -> None:
    server = subprocess.run(ECHO_SERVICE, env={**os.environ, name: value}, capture_output=True, text=True, timeout=30)

    assert server.returncode == 1
    assert server.stderr.strip() == f"{name} must be a positive whole number, got '{value}'"
