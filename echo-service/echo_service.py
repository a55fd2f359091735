"""Tutorial 1's Echo service: the HTTP service behind the `my_echo_udf` service function.

Same routes, env vars, logger and log format as the tutorial, served by uvicorn (a
production ASGI server) instead of Flask's development server.
"""

import logging
import os
import sys
from typing import Any
from urllib.parse import parse_qs

import jinja2
import orjson
import uvicorn


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


async def readiness_probe(scope: dict, receive: Any) -> tuple[int, str, bytes]:
    return 200, "text/plain; charset=utf-8", b"I'm ready!"


async def echo(scope: dict, receive: Any) -> tuple[int, str, bytes]:
    """Main handler for input data sent by Snowflake."""
    input_rows = get_input_rows(await read_body(receive))
    # input format:  {"data": [[row_index, column_1_value], ...]}
    # output format: {"data": [[row_index, echo_response], ...]}
    output_rows = [[row[0], get_echo_response(row[1])] for row in input_rows]
    logger.info("Received %d rows", len(output_rows))
    return 200, "application/json", orjson.dumps({"data": output_rows})


async def ui(scope: dict, receive: Any) -> tuple[int, str, bytes]:
    """Main handler for providing a web UI."""
    page = templates.get_template("basic_ui.html")
    if scope["method"] == "POST":
        # getting input in HTML form
        form = parse_qs((await read_body(receive)).decode("utf-8", "replace"))
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
        input = orjson.dumps(input).decode()
    return f"{CHARACTER_NAME} said {input}"


def get_input_rows(body: bytes) -> list[list]:
    """The rows of a service-function request, or BadRequest naming what is wrong."""
    try:
        message = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise BadRequest(f"body is not valid JSON: {error}") from None
    if not isinstance(message, dict):
        raise BadRequest('body must be a JSON object like {"data": [[0, "hello"]]}')
    if "data" not in message:
        raise BadRequest('body has no "data" key')
    rows = message["data"]
    if not isinstance(rows, list):
        raise BadRequest('"data" must be a list of rows')
    for index, row in enumerate(rows):
        if type(row) is not list or len(row) < 2:
            raise BadRequest(f"row {index} must be a list [row_number, value]")
        if type(row[0]) is not int:  # bool is an int subclass, and no row number
            raise BadRequest(f"row {index} has a row number that is not an integer")
    return rows


async def read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


ROUTES = {
    "/healthcheck": (readiness_probe, {"GET"}),
    "/echo": (echo, {"POST"}),
    "/ui": (ui, {"GET", "POST"}),
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
            status, content_type, body = 400, "application/json", orjson.dumps({"error": str(error)})
    headers.append((b"content-type", content_type.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


if __name__ == "__main__":
    uvicorn.run(
        "echo_service:app",
        host=SERVICE_HOST,
        port=SERVICE_PORT,
        workers=SERVER_WORKERS,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_config=LOG_CONFIG,
        timeout_graceful_shutdown=1,
        # The app reads no X-Forwarded-* header, and a reply needs no Server header: less work a request.
        proxy_headers=False,
        server_header=False,
    )
