"""Tutorial 3's job: call the Echo service from another container and log its answer.

In SPCS the job can start before the service is ready, so it retries connection errors and
404/429/5xx with exponential backoff until a deadline: SERVICE_WAIT_SECONDS bounds the whole
call, however slowly the service answers. Any final failure is one ERROR line and exit code 1,
so that SPCS marks the job FAILED.
"""

import json
import logging
import math
import os
import signal
import sys
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

import requests
from tenacity import Retrying, retry_if_exception_type, stop_before_delay, wait_exponential

# Bad settings, each logged as an ERROR line once the logger exists; the job then exits 1.
BAD_SETTINGS: list[str] = []


def env_seconds(name: str, default: float) -> float:
    """A positive, finite number of seconds from the environment; a bad value is noted in BAD_SETTINGS."""
    value = os.getenv(name, str(default))
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0
    if not 0 < seconds < math.inf:
        BAD_SETTINGS.append(f"{name} must be a positive number of seconds, got {value!r}")
        return default
    return seconds


def env_url(name: str, default: str) -> str:
    """An http:// or https:// URL with a host from the environment; a bad value is noted in BAD_SETTINGS."""
    value = os.getenv(name, default)
    try:
        parts = urlsplit(value)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and " " not in value and parts.port != 0
    except ValueError:  # a port that is not a number
        valid = False
    if not valid:
        BAD_SETTINGS.append(f"{name} must be an http:// or https:// URL, got {value!r}")
    return value


SERVICE_URL = env_url("SERVICE_URL", "http://localhost:8080/echo")
ECHO_TEXT = os.getenv("ECHO_TEXT", "Hello")
# How long to wait for the service in all, and for each attempt.
WAIT_SECONDS = env_seconds("SERVICE_WAIT_SECONDS", 60)
ATTEMPT_SECONDS = env_seconds("SERVICE_ATTEMPT_SECONDS", 10)
# The statuses Snowflake itself retries a service function on.
RETRY_STATUSES = {404, 429, 500, 502, 503, 504}
# The answer to one row is small: more than this is the service's fault, and is not read.
MAX_REPLY_BYTES = 2**20


class CallFailed(Exception):
    """The call failed for good; the message names the cause in one line."""


class NotReady(Exception):
    """The service is not reachable or not ready yet: worth another try."""


class Terminated(BaseException):
    """SIGTERM arrived: SPCS is stopping the job."""


class DeadlinePassed(BaseException):
    """SERVICE_WAIT_SECONDS ran out, wherever the call was (a BaseException, so no library catches it)."""


class OneLineFormatter(logging.Formatter):
    """Each record on one line: a line break or control character in a message (text from the service)
    shows escaped, so it can't forge log lines."""

    ESCAPES = {c: f"\\u{c:04x}" for c in [*range(32), 127, 0x85, 0x2028, 0x2029]} | {10: "\\n", 13: "\\r"}

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).translate(self.ESCAPES)


def get_logger(logger_name: str) -> logging.Logger:
    logger = logging.getLogger(logger_name)
    logger.setLevel(logging.DEBUG)
    handler = logging.StreamHandler(sys.stdout)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(OneLineFormatter("%(name)s [%(asctime)s] [%(levelname)s] %(message)s"))
    logger.addHandler(handler)
    return logger


logger = get_logger("service-to-service")


def call_service(service_url: str, echo_input: str) -> str:
    logger.info(f"Calling {service_url} with input {echo_input}")
    row_to_send = {"data": [[0, echo_input]]}
    retrying = Retrying(
        stop=stop_before_delay(WAIT_SECONDS),
        wait=wait_exponential(multiplier=0.25, max=5),
        retry=retry_if_exception_type(NotReady),
        reraise=True,
    )
    try:
        status, body = retrying(post, service_url, row_to_send)
    except NotReady as error:
        raise CallFailed(f"{service_url} was not ready within {WAIT_SECONDS:g} s: {error}") from None
    echo_response = get_echo_response(service_url, status, body)
    logger.info(f"Received response from {service_url}: {echo_response}")
    return echo_response


def post(service_url: str, body: dict) -> tuple[int, bytes]:
    """One attempt: the status and at most MAX_REPLY_BYTES of body; NotReady when another may succeed."""
    try:
        with requests.post(
            service_url, json=body, timeout=ATTEMPT_SECONDS, allow_redirects=False, stream=True
        ) as response:
            if response.status_code in RETRY_STATUSES:
                raise NotReady(f"HTTP {response.status_code}")
            reply = b""
            for chunk in response.iter_content(65536):
                reply += chunk
                if len(reply) > MAX_REPLY_BYTES:
                    raise CallFailed(f"{service_url} answered more than {MAX_REPLY_BYTES} bytes")
            return response.status_code, reply
    except (requests.ConnectionError, requests.Timeout) as error:
        raise NotReady(f"{type(error).__name__}") from None
    except requests.RequestException as error:  # a reply cut short or mangled: not worth another try
        raise CallFailed(f"the connection broke while {service_url} answered: {type(error).__name__}") from None


def get_echo_response(service_url: str, status: int, body: bytes) -> str:
    """The echoed text of row 0, or CallFailed saying what is wrong with the reply."""
    text = body[:200].decode(errors="replace")
    if status != 200:
        raise CallFailed(f"{service_url} answered HTTP {status}: {text}")
    try:
        message: Any = json.loads(body)
    except (ValueError, RecursionError):
        raise CallFailed(f"{service_url} answered with a body that is not JSON: {text!r}") from None
    rows = message.get("data") if isinstance(message, dict) else None
    if not isinstance(rows, list):
        raise CallFailed(f'{service_url} answered without a "data" list: {text}')
    if len(rows) != 1 or not isinstance(rows[0], list) or len(rows[0]) != 2:
        raise CallFailed(f"{service_url} answered {len(rows)} rows, not the one row [0, text] that was sent")
    row_number, echo_response = rows[0]
    if type(row_number) is not int or row_number != 0:  # false and 0.0 are not row 0
        raise CallFailed(f"{service_url} answered row number {json.dumps(row_number)} for row 0")
    return str(echo_response)


def terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def deadline_passed(signum: int, frame: FrameType | None) -> None:
    raise DeadlinePassed


def main() -> int:
    """Call the service once; the exit code tells SPCS whether the job is DONE (0) or FAILED."""
    for problem in BAD_SETTINGS:
        logger.error(f"Bad setting: {problem}")
    if BAD_SETTINGS:
        return 1
    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGALRM, deadline_passed)
    signal.setitimer(signal.ITIMER_REAL, WAIT_SECONDS)  # the whole call, slow answers included
    try:
        call_service(SERVICE_URL, ECHO_TEXT)
    except CallFailed as error:
        logger.error(f"Call failed: {error}")
        return 1
    except DeadlinePassed:
        logger.error(f"Call failed: {SERVICE_URL} gave no whole answer within {WAIT_SECONDS:g} s")
        return 1
    except Terminated:
        logger.error("Stopped: SIGTERM received")
        return 143
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
