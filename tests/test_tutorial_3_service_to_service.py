"""Tutorial 3's caller, run as a process against the real Echo service and a faulty stand-in."""

import contextlib
import http.server
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from spcs_local.processes import free_port

from .conftest import ROOT, start_echo_service

CALLER = [sys.executable, str(ROOT / "tutorial-3-service-to-service" / "service_to_service.py")]


def caller_env(service_url: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "SERVICE_URL": service_url, **extra}


def run_caller(service_url: str, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(CALLER, env=caller_env(service_url, **extra), capture_output=True, text=True, timeout=90)


def test_calls_the_echo_service_and_logs_bob_said_hello(echo_url: str) -> None:
    url = f"{echo_url}/echo"

    caller = run_caller(url)

    assert caller.returncode == 0, caller.stdout + caller.stderr
    timestamp = r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\]"
    assert [re.sub(timestamp, "[time]", line) for line in caller.stdout.splitlines()] == [
        f"service-to-service [time] [INFO] Calling {url} with input Hello",
        f"service-to-service [time] [INFO] Received response from {url}: Bob said Hello",
    ]


def test_the_text_to_send_is_configurable(echo_url: str) -> None:
    caller = run_caller(f"{echo_url}/echo", ECHO_TEXT="Good morning")

    assert "Bob said Good morning" in caller.stdout


def test_it_waits_for_an_echo_service_that_starts_after_it() -> None:
    port = free_port()
    caller = subprocess.Popen(
        CALLER, env=caller_env(f"http://127.0.0.1:{port}/echo"), stdout=subprocess.PIPE, text=True
    )
    try:
        calling = caller.stdout.readline()  # type: ignore[union-attr]  # its first call is refused: nothing listens
        with start_echo_service(port, {"CHARACTER_NAME": "Bob"}):
            output = caller.communicate(timeout=60)[0]
    finally:
        caller.kill()

    assert caller.returncode == 0
    assert "Calling" in calling and "Bob said Hello" in output


def test_an_echo_service_that_never_starts_fails_after_the_deadline() -> None:
    url = f"http://127.0.0.1:{free_port()}/echo"

    caller = run_caller(url, SERVICE_WAIT_SECONDS="3")

    assert caller.returncode == 1
    assert f"[ERROR] Call failed: {url} was not ready within 3 s: ConnectionError" in caller.stdout


class FaultyEcho(http.server.BaseHTTPRequestHandler):
    """Answers every POST with the class's canned (status, body), or misbehaves as `mode` says."""

    answer: tuple[int, bytes] = (200, b"")
    mode = "canned"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        if self.mode == "redirect-loop":
            self.send_response(302)
            self.send_header("Location", self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.mode == "redirect-to-file":
            self.send_response(307)
            self.send_header("Location", "file:///etc/passwd")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.mode == "closed-mid-body":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b'{"data": [[0, "B')
        elif self.mode == "endless":  # a reply that never ends, until the caller hangs up
            self.send_response(200)
            self.end_headers()
            with contextlib.suppress(OSError):
                while True:
                    self.wfile.write(b"x" * 65536)
        elif self.mode == "drip":  # a byte a quarter second: each read is quick, the whole never comes
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            with contextlib.suppress(OSError):
                for _ in range(400):
                    self.wfile.write(b"X")
                    self.wfile.flush()
                    time.sleep(0.25)
        else:
            status, body = self.answer
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def faulty_echo() -> Iterator[tuple[str, type[FaultyEcho]]]:
    handler = type("Handler", (FaultyEcho,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/echo", handler
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("status", "body", "cause"),
    [
        (500, b"oops", "was not ready within 2 s: HTTP 500"),
        (400, b'{"error": "bad"}', 'answered HTTP 400: {"error": "bad"}'),
        (200, b"<html>not json</html>", "answered with a body that is not JSON"),
        (200, b'{"rows": []}', 'answered without a "data" list'),
        (200, b'{"data": []}', "answered 0 rows, not the one row [0, text] that was sent"),
        (200, b'{"data": [[0, "a"], [1, "b"]]}', "answered 2 rows"),
        (200, b'{"data": [[0]]}', "answered 1 rows, not the one row [0, text]"),
        (200, b'{"data": [[7, "Bob said Hello"]]}', "answered row number 7 for row 0"),
        (200, b'{"data": [[false, "Bob said Hello"]]}', "answered row number false for row 0"),
        (200, b'{"data": [[0.0, "Bob said Hello"]]}', "answered row number 0.0 for row 0"),
        (302, b"", "answered HTTP 302"),
        (200, b'{"data": [[0, ' + b"[" * 100_000 + b"]]}", "answered with a body that is not JSON"),
    ],
    ids=[
        "500",
        "400",
        "not-json",
        "no-data",
        "no-rows",
        "two-rows",
        "short-row",
        "row-number",
        "false-row",
        "float-row",
        "302",
        "deep",
    ],
)
def test_a_faulty_reply_fails_the_job_naming_the_cause(
    faulty_echo: tuple[str, type[FaultyEcho]], status: int, body: bytes, cause: str
) -> None:
    url, handler = faulty_echo
    handler.answer = (status, body)

    caller = run_caller(url, SERVICE_WAIT_SECONDS="2")

    assert caller.returncode == 1
    errors = [line for line in caller.stdout.splitlines() if "[ERROR]" in line]
    assert len(errors) == 1 and cause in errors[0], caller.stdout
    assert "Traceback" not in caller.stderr


@pytest.mark.parametrize(
    ("mode", "cause"),
    [
        ("redirect-loop", "answered HTTP 302"),
        ("redirect-to-file", "answered HTTP 307"),
        ("closed-mid-body", "the connection broke"),
        ("endless", "answered more than 1048576 bytes"),
        ("drip", "gave no whole answer within 2 s"),
    ],
)
def test_a_misbehaving_service_fails_the_job_in_one_line_within_the_deadline(
    faulty_echo: tuple[str, type[FaultyEcho]], mode: str, cause: str
) -> None:
    url, handler = faulty_echo
    handler.mode = mode

    caller = run_caller(url, SERVICE_WAIT_SECONDS="2")

    assert caller.returncode == 1
    errors = [line for line in caller.stdout.splitlines() if "[ERROR]" in line]
    assert len(errors) == 1 and cause in errors[0], caller.stdout
    assert caller.stderr == ""


def test_text_from_the_service_cannot_forge_log_lines(faulty_echo: tuple[str, type[FaultyEcho]]) -> None:
    url, handler = faulty_echo
    forged = "Bob said Hello\nservice-to-service [2026-01-01 00:00:00,000] [ERROR] forged\r\u2028x"
    handler.answer = (200, json.dumps({"data": [[0, forged]]}).encode())

    caller = run_caller(url)

    assert caller.returncode == 0
    lines = caller.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("service-to-service [") for line in lines)
    assert lines[1].endswith("Bob said Hello\\nservice-to-service [2026-01-01 00:00:00,000] [ERROR] forged\\r\\u2028x")


@pytest.mark.parametrize(
    ("url", "cause"),
    [
        ("127.0.0.1:8000/echo", "SERVICE_URL must be an http:// or https:// URL, got '127.0.0.1:8000/echo'"),
        ("ftp://echo-service/echo", "SERVICE_URL must be an http:// or https:// URL, got 'ftp://echo-service/echo'"),
        ("http://", "SERVICE_URL must be an http:// or https:// URL, got 'http://'"),
        ("http://echo service:8000/echo", "SERVICE_URL must be an http:// or https:// URL"),
    ],
)
def test_a_bad_service_url_is_one_error_line_in_the_jobs_log_format_and_exit_1(url: str, cause: str) -> None:
    caller = run_caller(url)

    assert caller.returncode == 1 and caller.stderr == ""
    [line] = caller.stdout.splitlines()
    assert re.fullmatch(r"service-to-service \[[^]]+\] \[ERROR\] Bad setting: (.*)", line)[1].startswith(cause)


@pytest.mark.parametrize("value", ["inf", "nan", "-1", "0", "1e400", "soon"])
def test_a_deadline_that_is_not_a_positive_finite_number_is_refused(value: str) -> None:
    caller = run_caller("http://127.0.0.1:9/echo", SERVICE_WAIT_SECONDS=value)

    assert caller.returncode == 1 and caller.stderr == ""
    assert caller.stdout.strip().endswith(
        f"[ERROR] Bad setting: SERVICE_WAIT_SECONDS must be a positive number of seconds, got '{value}'"
    )


def test_sigterm_ends_it_cleanly() -> None:
    caller = subprocess.Popen(
        CALLER, env=caller_env(f"http://127.0.0.1:{free_port()}/echo"), stdout=subprocess.PIPE, text=True
    )
    try:
        assert "Calling" in caller.stdout.readline()  # type: ignore[union-attr]
        caller.terminate()
        output = caller.communicate(timeout=10)[0]
    finally:
        caller.kill()

    assert caller.returncode == 143
    assert "[ERROR] Stopped: SIGTERM received" in output
