"""Tutorial 3's job: call the Echo service from another container and log its answer.

In SPCS the job can start before the service is ready, so it retries connection errors and
404/429/5xx with exponential backoff until a deadline. Any final failure is one ERROR line and
exit code 1, so that SPCS marks the job FAILED.
"""

import logging
import os
import signal
import sys
from types import FrameType
from typing import Any

import requests
from tenacity import Retrying, retry_if_exception_type, stop_before_delay, wait_exponential


def env_seconds(name: str, default: float) -> float:
    """A positive number of seconds from the environment, or exit naming the bad value."""
    value = os.getenv(name, str(default))
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0
    if not seconds > 0:
        sys.exit(f"{name} must be a positive number of seconds, got {value!r}")
    return seconds


SERVICE_URL = os.getenv("SERVICE_URL", "http://localhost:8080/echo")
ECHO_TEXT = os.getenv("ECHO_TEXT", "Hello")
# How long to wait for the service in all, and for each attempt.
WAIT_SECONDS = env_seconds("SERVICE_WAIT_SECONDS", 60)
ATTEMPT_SECONDS = env_seconds("SERVICE_ATTEMPT_SECONDS", 10)
# The statuses Snowflake itself retries a service function on.
RETRY_STATUSES = {404, 429, 500, 502, 503, 504}


class CallFailed(Exception):
    """The call failed for good; the message names the cause in one line."""


class NotReady(Exception):
    """The service is not reachable or not ready yet: worth another try."""


class Terminated(BaseException):
    """SIGTERM arrived: SPCS is stopping the job."""


def get_logger(logger_name: str) -> logging.Logger:
    logger = logging.getLogger(logger_name)
    logger.setLevel(logging.DEBUG)
    handler = logging.StreamHandler(sys.stdout)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(name)s [%(asctime)s] [%(levelname)s] %(message)s"))
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
        response = retrying(post, service_url, row_to_send)
    except NotReady as error:
        raise CallFailed(f"{service_url} was not ready within {WAIT_SECONDS:g} s: {error}") from None
    echo_response = get_echo_response(service_url, response)
    logger.info(f"Received response from {service_url}: {echo_response}")
    return echo_response


def post(service_url: str, body: dict) -> requests.Response:
    """One attempt; NotReady when another one may succeed."""
    try:
        response = requests.post(service_url, json=body, timeout=ATTEMPT_SECONDS)
    except (requests.ConnectionError, requests.Timeout) as error:
        raise NotReady(f"{type(error).__name__}") from None
    if response.status_code in RETRY_STATUSES:
        raise NotReady(f"HTTP {response.status_code}")
    return response


def get_echo_response(service_url: str, response: requests.Response) -> str:
    """The echoed text of row 0, or CallFailed saying what is wrong with the reply."""
    if not response.ok:
        raise CallFailed(f"{service_url} answered HTTP {response.status_code}: {response.text[:200]}")
    try:
        message: Any = response.json()
    except ValueError:
        raise CallFailed(f"{service_url} answered with a body that is not JSON: {response.text[:200]!r}") from None
    rows = message.get("data") if isinstance(message, dict) else None
    if not isinstance(rows, list):
        raise CallFailed(f'{service_url} answered without a "data" list: {response.text[:200]}')
    if len(rows) != 1 or not isinstance(rows[0], list) or len(rows[0]) != 2:
        raise CallFailed(f"{service_url} answered {len(rows)} rows, not the one row [0, text] that was sent")
    row_number, echo_response = rows[0]
    if row_number != 0:
        raise CallFailed(f"{service_url} answered row number {row_number!r} for row 0")
    return str(echo_response)


def terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def main() -> int:
    """Call the service once; the exit code tells SPCS whether the job is DONE (0) or FAILED."""
    signal.signal(signal.SIGTERM, terminate)
    try:
        call_service(SERVICE_URL, ECHO_TEXT)
    except CallFailed as error:
        logger.error(f"Call failed: {error}")
        return 1
    except Terminated:
        logger.error("Stopped: SIGTERM received")
        return 143
    return 0


if __name__ == "__main__":
    sys.exit(main())
