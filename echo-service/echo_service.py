"""Tutorial 1's Echo service: the HTTP service behind the `my_echo_udf` service function.

Same routes, env vars, logger and log format as the tutorial, served by uvicorn (a
production ASGI server) instead of Flask's development server.
"""

import json
import logging
import os
import sys
from typing import Any
from urllib.parse import parse_qs

import jinja2
import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def env_int(name: str, default: int) -> int:
    """A positive whole number from the environment, or exit naming the bad value."""
    value = os.getenv(name, str(default))
    if not value.isdigit() or int(value) < 1:
        sys.exit(f"{name} must be a positive whole number, got {value!r}")
    return int(value)


SERVICE_HOST = os.getenv("SERVER_HOST", "0.0.0.0")
SERVICE_PORT = env_int("SERVER_PORT", 8080)
CHARACTER_NAME = os.getenv("CHARACTER_NAME", "I")
# One worker process per CPU this process may use, as the image runs it.
SERVER_WORKERS = env_int("SERVER_WORKERS", len(os.sched_getaffinity(0)))
# Snowflake's batches are far smaller: a larger body is refused (413) before it is read.
SERVER_MAX_BODY_BYTES = env_int("SERVER_MAX_BODY_BYTES", 64 * 2**20)
# A request must arrive whole within this time of its first byte; an idle connection closes after 5 s.
SERVER_REQUEST_TIMEOUT_SECONDS = env_int("SERVER_REQUEST_TIMEOUT_SECONDS", 60)
MAX_HEADER_BYTES = 64 * 2**10
# Twenty digits in a row may be an integer orjson would read as a float; found as a run of zeros once every
# digit is one (two C calls: a regular expression costs more than the parse).
DIGITS_AS_ZEROS, TWENTY_DIGITS = bytes.maketrans(b"123456789", b"000000000"), b"0" * 20

LOG_FORMAT = "%(name)s [%(asctime)s] [%(levelname)s] %(message)s"
# The tutorial's format for our logger and for the server's own lines, on stdout.
LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"tutorial": {"format": LOG_FORMAT}},
    "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "tutorial", "stream": "ext://sys.stdout"}},
    "loggers": {
        "echo-service": {"handlers": ["stdout"], "level": "INFO"},
        "uvicorn": {"handlers": ["stdout"], "level": "INFO"},
    },
}

logger = logging.getLogger("echo-service")
# The logging HOWTO's optimizations: the per-batch line is on the hot path, and
# caller, thread and process lookups for each record cost more than the line itself.
logging._srcfile = None
logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")),
    autoescape=True,
)


class BadRequest(Exception):
    """The request can't be answered; the message names the problem (HTTP 400)."""

    status = 400


class TooLarge(BadRequest):
    status = 413


TOO_LARGE = f"body is larger than {SERVER_MAX_BODY_BYTES} bytes (SERVER_MAX_BODY_BYTES)"


async def readiness_probe(scope: dict, receive: Any) -> tuple[int, str, bytes]:
    return 200, "text/plain; charset=utf-8", b"I'm ready!"


async def echo(scope: dict, receive: Any) -> tuple[int, str, bytes]:
    """Main handler for input data sent by Snowflake."""
    input_rows = get_input_rows(await read_body(scope, receive))
    # input format:  {"data": [[row_index, column_1_value], ...]}
    # output format: {"data": [[row_index, echo_response], ...]}
    output_rows = [[row[0], get_echo_response(row[1])] for row in input_rows]
    logger.info("Received %d rows", len(output_rows))
    try:
        return 200, "application/json", orjson.dumps({"data": output_rows})
    except orjson.JSONEncodeError:  # only a row number can't be written: one beyond 64 bits
        raise BadRequest("a row number is beyond 64 bits") from None


async def ui(scope: dict, receive: Any) -> tuple[int, str, bytes]:
    """Main handler for providing a web UI."""
    page = templates.get_template("basic_ui.html")
    if scope["method"] == "POST":
        # getting input in HTML form
        form = parse_qs((await read_body(scope, receive)).decode("utf-8", "replace"))
        input_text = form.get("input", [""])[0]
        # display input and output
        text = page.render(echo_input=input_text, echo_response=get_echo_response(input_text))
    else:
        text = page.render()
    return 200, "text/html; charset=utf-8", text.encode()


def get_echo_response(input: Any) -> str | None:
    if input is None:  # SQL NULL stays NULL
        return None
    if not isinstance(input, str):  # numbers, booleans, objects: their JSON text
        input = json_text(input)
    return f"{CHARACTER_NAME} said {input}"


def json_text(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:  # an integer beyond 64 bits, or nesting deeper than orjson writes
        try:
            return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        except RecursionError:
            raise BadRequest("a value is nested too deeply to echo") from None


def get_input_rows(body: bytes) -> list[list]:
    """The rows of a service-function request, or BadRequest naming what is wrong."""
    try:
        # orjson reads an integer beyond 64 bits as a float; the standard library keeps it exact.
        exact = body.translate(DIGITS_AS_ZEROS).find(TWENTY_DIGITS) >= 0
        message = json.loads(body, parse_constant=not_json) if exact else orjson.loads(body)
    except (orjson.JSONDecodeError, ValueError) as error:
        deep = "recursion" in str(error).lower() or "depth" in str(error).lower()
        problem = "nested too deeply" if deep else f"not valid JSON: {error}"
        raise BadRequest(f"body is {problem}") from None
    except RecursionError:
        raise BadRequest("body is nested too deeply") from None
    if not isinstance(message, dict):
        raise BadRequest('body must be a JSON object like {"data": [[0, "hello"]]}')
    if "data" not in message:
        raise BadRequest('body has no "data" key')
    rows = message["data"]
    if not isinstance(rows, list):
        raise BadRequest('"data" must be a list of rows')
    for index, row in enumerate(rows):
        if type(row) is not list or len(row) != 2:  # the function takes one argument: one value a row
            raise BadRequest(f"row {index} must be a list [row_number, value]")
        if type(row[0]) is not int:  # bool is an int subclass, and no row number
            raise BadRequest(f"row {index} has a row number that is not an integer")
    return rows


def not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


async def read_body(scope: dict, receive: Any) -> bytes:
    """The whole body, or TooLarge as soon as it is known to pass SERVER_MAX_BODY_BYTES."""
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > SERVER_MAX_BODY_BYTES:
            raise TooLarge(TOO_LARGE)
    chunks, size = [], 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > SERVER_MAX_BODY_BYTES:
            raise TooLarge(TOO_LARGE)
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


# HEAD is answered as GET; uvicorn leaves the body out.
ROUTES = {
    "/healthcheck": (readiness_probe, {"GET", "HEAD"}),
    "/echo": (echo, {"POST"}),
    "/ui": (ui, {"GET", "HEAD", "POST"}),
}


async def app(scope: dict, receive: Any, send: Any) -> None:
    """The ASGI application: route, answer, and turn bad input into a 4xx."""
    if scope["type"] != "http":
        return
    handler, methods = ROUTES.get(scope["path"], (None, set()))
    headers = []
    if handler is None:
        status, content_type, body = 404, "application/json", b'{"error": "not found"}'
    elif scope["method"] not in methods:
        status, content_type, body = 405, "application/json", b'{"error": "method not allowed"}'
        headers = [(b"allow", ", ".join(sorted(methods)).encode())]
    else:
        try:
            status, content_type, body = await handler(scope, receive)
        except BadRequest as error:
            logger.warning("Bad request to %s: %s", scope["path"], error)
            status, content_type, body = error.status, "application/json", orjson.dumps({"error": str(error)})
    headers += [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class OneWritePerTurn:
    """A connection's transport whose writes within one turn of the event loop go out together: a response's
    status line and headers, and then its body, in one system call and one TCP segment rather than two."""

    def __init__(self, transport: Any, loop: Any) -> None:
        self.transport, self.loop, self.pending = transport, loop, []

    def write(self, data: bytes) -> None:
        if not self.pending:
            self.loop.call_soon(self.flush)
        self.pending.append(data)

    def flush(self) -> None:
        data, self.pending = b"".join(self.pending), []
        if data and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def __getattr__(self, name: str) -> Any:  # the rest, as the transport has it
        return getattr(self.transport, name)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol with the bounds it leaves out: at most MAX_HEADER_BYTES of request line and
    headers (else 400), a connection that sends nothing closed after the keep-alive timeout, and a request
    that doesn't arrive whole within SERVER_REQUEST_TIMEOUT_SECONDS closed. Its replies go out in one write
    each (OneWritePerTurn): a third more requests a second."""

    header_bytes = 0
    request_timer: Any = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(OneWritePerTurn(transport, self.loop))
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop_request_timer()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.header_bytes = 0
        self.stop_request_timer()
        self.request_timer = self.loop.call_later(SERVER_REQUEST_TIMEOUT_SECONDS, self.timeout_keep_alive_handler)

    def on_url(self, url: bytes) -> None:
        self.count_header_bytes(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.count_header_bytes(len(name) + len(value))
        super().on_header(name, value)

    def on_message_complete(self) -> None:
        self.stop_request_timer()
        super().on_message_complete()

    def count_header_bytes(self, size: int) -> None:
        self.header_bytes += size
        if self.header_bytes > MAX_HEADER_BYTES:
            raise ValueError("headers too large")  # the parser stops; uvicorn answers 400

    def send_400_response(self, msg: str) -> None:
        if self.header_bytes > MAX_HEADER_BYTES:
            msg = f"Request line and headers are larger than {MAX_HEADER_BYTES} bytes."
        super().send_400_response(msg)

    def stop_request_timer(self) -> None:
        if self.request_timer is not None:
            self.request_timer.cancel()
            self.request_timer = None


if __name__ == "__main__":
    uvicorn.run(
        "echo_service:app",
        host=SERVICE_HOST,
        port=SERVICE_PORT,
        workers=SERVER_WORKERS,
        loop="uvloop",
        http=BoundedHttpToolsProtocol,
        lifespan="off",
        access_log=False,
        log_config=LOG_CONFIG,
        timeout_graceful_shutdown=1,
        # The app reads no X-Forwarded-* header, and a reply needs no Server header: less work a request.
        proxy_headers=False,
        server_header=False,
    )
