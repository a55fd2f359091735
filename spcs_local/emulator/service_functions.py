"""Snowflake's side of a service function's contract: rows sent to the service's endpoint in batches.

Following "External functions data format", "CREATE FUNCTION (Snowpark Container Services)" and the
2025_02 change to retries:

- a POST of `{"data": [[row_index, arg1, ...], ...]}`, indexes 0-based within each batch, at most
  MAX_BATCH_ROWS rows a batch (default 1000 here), several batches in flight from a small pool;
- the `sf-external-function-*` headers (format and version, the query id, a batch id unique per batch
  and the same on a retry, the name, signature and return type), the CONTEXT_HEADERS, and
  `Content-Type: application/json`;
- 404, 429, 500, 502, 503 and 504 (and a connection refused) retried with exponential backoff,
  MAX_BATCH_RETRIES times (default 3); 202 polled with GET until the answer is ready; all within
  BATCH_TIMEOUT_SECS a batch. Then ON_BATCH_FAILURE decides: ABORT fails the query, RETURN_NULL makes
  the batch's results NULL;
- a reply without exactly one row per input row, with other row numbers, or that is not JSON, fails
  the query with an error naming the function;
- SQL NULL is JSON null, a JSON null result is SQL NULL, and results are cast to the return type.

It knows nothing of SQL or Docker: `call` gets the rows and where the service answers.
"""

import base64
import contextlib
import http.client
import itertools
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import orjson

from spcs_local.emulator.catalog import ServiceFunction
from spcs_local.emulator.results import SnowflakeError

RETRY_STATUSES = {404, 429, 500, 502, 503, 504}
DEFAULT_MAX_BATCH_ROWS = 1000
IN_FLIGHT = 8  # batches in flight at once for one service, across all queries
MAX_REPLY_BYTES = 64 * 2**20  # far above what 2048 rows of results need: more is the service's bug
MAX_TEXT_BYTES = 16 * 2**20  # Snowflake's largest VARCHAR
FIRST_BACKOFF, MAX_BACKOFF = 0.1, 5.0
CONTEXT_FUNCTIONS = {
    "CURRENT_USER": "user",
    "CURRENT_ROLE": "role",
    "CURRENT_DATABASE": "database",
    "CURRENT_SCHEMA": "schema",
    "CURRENT_WAREHOUSE": "warehouse",
    "CURRENT_ACCOUNT": "account",
}


class ServiceFunctionError(Exception):
    """The query fails: the message names the function and what went wrong."""


class Cancelled(Exception):
    """The query was cancelled (SYSTEM$CANCEL_ALL_QUERIES, the connector's abort, a closed session)."""


class Unreachable(Exception):
    """No answer from the service this time (refused, reset, closed mid-answer): worth another try."""


class TooLarge(Exception):
    """The service's reply is over MAX_REPLY_BYTES."""


@dataclass(frozen=True)
class CallContext:
    """What the query's session gives the headers."""

    query_id: str
    user: str
    role: str
    database: str | None
    schema: str | None
    warehouse: str | None
    account: str


@dataclass
class Site:
    """One call of a function in a running query: what every batch of it shares."""

    function: ServiceFunction
    headers: dict[str, str]
    cast: Callable[[Any], Any]
    cancelled: threading.Event
    numbers: Iterator[int] = field(default_factory=itertools.count)
    urls: list[str] = field(default_factory=list)  # the endpoint's on each READY instance, found at the first batch


class Caller:
    """Calls service functions for the queries that run now: each call site has an id (see
    Statements.service_function_calls), open while its query runs. Each service has its own IN_FLIGHT
    batches at once, so a slow service holds back only its own calls. Batches take turns among the service's
    READY instances; one to an instance that went away is retried on another."""

    def __init__(
        self, instance_urls: Callable[[ServiceFunction], list[str]], context: ssl.SSLContext | None = None
    ) -> None:
        self.instance_urls = instance_urls
        self.pools: dict[str, ThreadPoolExecutor] = {}
        self.lock = threading.Lock()
        self.http = Http(context)
        self.sites: dict[str, Site] = {}
        self.queries: dict[str, threading.Event] = {}  # query id -> set when it is cancelled

    def open(self, context: CallContext, calls: dict[str, ServiceFunction]) -> None:
        cancelled = self.queries.setdefault(context.query_id, threading.Event())
        for call_id, function in calls.items():
            self.sites[call_id] = Site(function, headers_for(function, context), caster(function), cancelled)

    def call_ids(self, query_id: str) -> list[str]:
        return [call_id for call_id in list(self.sites) if call_id.startswith(f"{query_id}:")]

    def close(self, query_id: str) -> None:
        for call_id in self.call_ids(query_id):
            self.sites.pop(call_id, None)
        self.queries.pop(query_id, None)

    def cancel(self, query_id: str | None = None) -> None:
        """End the query's batches (every query's without an id) within moments: waits, retries and replies."""
        for key, cancelled in list(self.queries.items()):
            if query_id is None or key == query_id:
                cancelled.set()

    def invoke(self, call_id: str, rows: Sequence[Sequence[Any]]) -> list[Any]:
        """A chunk of rows of one call, as its query runs it: each row's result, in order. A batch's id is
        the call's and the batch's number: unique in the query, the same on a retry."""
        site = self.sites[call_id]
        if site.cancelled.is_set():
            raise Cancelled("SQL execution canceled")
        if not site.urls:
            site.urls = self.urls(site.function)
        size = site.function.max_batch_rows or DEFAULT_MAX_BATCH_ROWS
        pool = self.pool(site.function.service)
        futures = [
            pool.submit(self.batch, site, call_id, next(site.numbers), rows[start : start + size])
            for start in range(0, len(rows), size)
        ]
        return [value for future in futures for value in future.result()]

    def pool(self, service: str) -> ThreadPoolExecutor:
        with self.lock:
            if service not in self.pools:
                self.pools[service] = ThreadPoolExecutor(IN_FLIGHT, thread_name_prefix=f"service-function-{service}")
            return self.pools[service]

    def urls(self, function: ServiceFunction) -> list[str]:
        return [url + function.path for url in self.instance_urls(function)]

    def batch(self, site: Site, call_id: str, number: int, rows: Sequence) -> list:
        function, cancelled, batch_id = site.function, site.cancelled, f"{call_id}:{number}"
        url = site.urls[number % len(site.urls)]
        body = orjson.dumps({"data": [[index, *row] for index, row in enumerate(rows)]})
        headers = {**site.headers, "sf-external-function-query-batch-id": batch_id}
        deadline = time.monotonic() + function.batch_timeout_secs
        attempts, backoff, method = 0, FIRST_BACKOFF, "POST"
        while True:
            try:
                status, data = self.http.exchange(
                    method, url, body if method == "POST" else None, headers, deadline, cancelled
                )
            except TimeoutError:
                return failed(function, rows, f"batch {batch_id} timed out after {function.batch_timeout_secs} s")
            except TooLarge:
                return failed(function, rows, f"the service's reply is larger than {MAX_REPLY_BYTES // 2**20} MiB")
            except Unreachable:
                status, data = 0, b""
            if cancelled.is_set():
                raise Cancelled("SQL execution canceled")
            if status == 200:
                return results(function, rows, data, site.cast)
            if status == 202:  # still working: ask again for the same batch
                method = "GET"
            elif status and status not in RETRY_STATUSES:
                answer = data[:200].decode(errors="replace")
                return failed(function, rows, f"the service answered HTTP {status} to batch {batch_id}: {answer}")
            elif attempts >= function.max_batch_retries:
                what = f"answered HTTP {status} to" if status else f"could not be reached at {url} for"
                return failed(function, rows, f"the service {what} batch {batch_id}, {attempts + 1} times")
            else:
                attempts, method = attempts + 1, "POST"
                if not status:  # its instance may be gone: the next try goes to another READY one
                    url = self.another_url(site, url)
            if cancelled.wait(max(min(backoff, deadline - time.monotonic()), 0)):
                raise Cancelled("SQL execution canceled")
            backoff = min(backoff * 2, MAX_BACKOFF)

    def another_url(self, site: Site, url: str) -> str:
        """Another READY instance's URL than `url`, the service's instances looked up again; `url` when there is
        no other."""
        with contextlib.suppress(SnowflakeError):  # none READY just now: the next try tells
            site.urls = self.urls(site.function) or site.urls
        others = [other for other in site.urls if other != url]
        return others[0] if others else url

    def shutdown(self) -> None:
        self.cancel()
        for pool in list(self.pools.values()):
            pool.shutdown(wait=False, cancel_futures=True)
        self.http.watchdog.stop.set()


class Http:
    """HTTP/1.1 with keep-alive, a connection per thread and service (http.client), and a watchdog that
    closes a request's socket at its deadline or when its query is cancelled: a batch's time stays bounded
    whatever the service does, even sending a byte a second."""

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        self.local = threading.local()
        self.watchdog = Watchdog()
        self.context = context  # for https: an instance's gate

    def connection(self, url: str) -> http.client.HTTPConnection:
        parts = urlsplit(url)
        if parts.scheme == "https":
            return http.client.HTTPSConnection(parts.hostname or "", parts.port, context=self.context)
        return http.client.HTTPConnection(parts.hostname or "", parts.port)

    def exchange(
        self, method: str, url: str, body: bytes | None, headers: dict, deadline: float, cancelled: threading.Event
    ) -> tuple[int, bytes]:
        parts = urlsplit(url)
        connections = self.local.__dict__.setdefault("connections", {})
        reused = parts.netloc in connections
        connection = connections.pop(parts.netloc, None) or self.connection(url)
        try:
            status, data = self.once(connection, method, parts.path, body, headers, deadline, cancelled)
        except (ConnectionError, http.client.HTTPException) as error:
            connection.close()
            if not reused or time.monotonic() >= deadline or cancelled.is_set():
                raise Unreachable(str(error)) from None
            # The service closed the idle connection it had kept alive: once more, on a new one.
            connection = self.connection(url)
            try:
                status, data = self.once(connection, method, parts.path, body, headers, deadline, cancelled)
            except (ConnectionError, http.client.HTTPException) as again:
                connection.close()
                raise Unreachable(str(again)) from None
        except (OSError, TooLarge):
            connection.close()
            raise
        connections[parts.netloc] = connection
        return status, data

    def once(
        self, connection: http.client.HTTPConnection, method: str, path: str, body: bytes | None, headers: dict,
        deadline: float, cancelled: threading.Event,
    ) -> tuple[int, bytes]:  # fmt: skip
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        connection.timeout = remaining
        if connection.sock is None:
            connection.connect()
        connection.sock.settimeout(remaining)
        with self.watchdog.watching(connection.sock, deadline, cancelled):
            try:
                connection.request(method, path, body, headers)
                reply = connection.getresponse()
                data = reply.read(MAX_REPLY_BYTES + 1)
            except (OSError, http.client.HTTPException) as error:
                if cancelled.is_set():
                    raise Unreachable("cancelled") from None
                if time.monotonic() >= deadline or isinstance(error, socket.timeout):
                    raise TimeoutError from None
                raise
        if cancelled.is_set():
            raise Unreachable("cancelled")
        if time.monotonic() >= deadline:  # the watchdog cut the answer short
            raise TimeoutError
        if len(data) > MAX_REPLY_BYTES:
            raise TooLarge
        if reply.length:  # the connection closed before the Content-Length was sent: a network error
            raise http.client.IncompleteRead(data, reply.length)
        return reply.status, data


class Watchdog:
    """One thread that shuts down the sockets whose requests ran past their deadline, or whose query was cancelled."""

    def __init__(self) -> None:
        self.watched: dict[int, tuple[socket.socket, float, threading.Event]] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def watching(self, sock: socket.socket, deadline: float, cancelled: threading.Event) -> "Watching":
        with self.lock:
            if self.thread is None:
                self.thread = threading.Thread(target=self.run, name="service-function-watchdog", daemon=True)
                self.thread.start()
        return Watching(self, sock, deadline, cancelled)

    def run(self) -> None:
        while not self.stop.wait(0.05):
            now = time.monotonic()
            with self.lock:
                late = [sock for sock, deadline, cancelled in self.watched.values()
                        if deadline <= now or cancelled.is_set()]  # fmt: skip
            for sock in late:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class Watching:
    def __init__(self, watchdog: Watchdog, sock: socket.socket, deadline: float, cancelled: threading.Event) -> None:
        self.watchdog, self.sock, self.deadline, self.cancelled = watchdog, sock, deadline, cancelled

    def __enter__(self) -> None:
        with self.watchdog.lock:
            self.watchdog.watched[id(self)] = (self.sock, self.deadline, self.cancelled)

    def __exit__(self, *exc: object) -> None:
        with self.watchdog.lock:
            self.watchdog.watched.pop(id(self), None)


def failed(function: ServiceFunction, rows: Sequence, problem: str) -> list:
    """ON_BATCH_FAILURE: RETURN_NULL gives the batch's rows NULL; ABORT fails the query."""
    if function.on_batch_failure == "RETURN_NULL":
        return [None] * len(rows)
    raise ServiceFunctionError(f"Service function {function.name} failed: {problem}.")


def headers_for(function: ServiceFunction, context: CallContext) -> dict[str, str]:
    """The headers every batch of the call carries, but its batch id."""
    signature = f"({', '.join(f'{name} {kind}' for name, kind in function.arguments)})"
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "snowflake/1.0",
        "sf-external-function-format": "json",
        "sf-external-function-format-version": "1.0",
        "sf-external-function-current-query-id": context.query_id,
    }
    for header, value in (("name", function.name), ("signature", signature), ("return-type", function.returns)):
        headers[f"sf-external-function-{header}"] = value.encode("ascii", "replace").decode()
        headers[f"sf-external-function-{header}-base64"] = base64.b64encode(value.encode()).decode()
    for context_function in function.context_headers:
        attribute = CONTEXT_FUNCTIONS.get(context_function.upper())
        if attribute:
            value = getattr(context, attribute) or ""
            headers[f"sf-context-{context_function.lower().replace('_', '-')}"] = value
    return headers


def results(function: ServiceFunction, rows: Sequence, data: bytes, cast: Callable[[Any], Any]) -> list:
    """The reply's values in row order, cast to the return type; an error naming the function otherwise."""
    name = function.name
    try:
        reply = orjson.loads(data)
    except orjson.JSONDecodeError:
        try:
            reply = json.loads(data)  # integers beyond 64 bits, which orjson refuses
        except (ValueError, RecursionError):
            raise ServiceFunctionError(f"Service function {name} failed: the service's reply is not JSON.") from None
    answered = reply.get("data") if isinstance(reply, dict) else None
    if not isinstance(answered, list) or len(answered) != len(rows):
        count = len(answered) if isinstance(answered, list) else "no"
        raise ServiceFunctionError(
            f"Service function {name} failed: the service answered {count} rows for a batch of {len(rows)}."
        )
    for index, row in enumerate(answered):
        if type(row) is not list or len(row) != 2 or type(row[0]) is not int or row[0] != index:
            raise ServiceFunctionError(
                f"Service function {name} failed: row {index} of the reply is {brief(row)}, not [{index}, value]."
            )
    try:
        values = [cast(row[1]) for row in answered]
    except ValueError as error:
        shown = brief(error.args[0])
        raise ServiceFunctionError(
            f"Service function {name} failed: the service answered {shown}, not a {function.returns}."
        ) from None
    for value in values:
        if isinstance(value, str) and len(value) * 4 > MAX_TEXT_BYTES and len(value.encode()) > MAX_TEXT_BYTES:
            raise ServiceFunctionError(
                f"Service function {name} failed: the service answered a value of {len(value.encode()):,} bytes, "
                f"over the {MAX_TEXT_BYTES:,} bytes a {function.returns} holds."
            )
    return values


def brief(value: Any) -> str:
    """A value as JSON, cut short: an error message shows what came, never all of it."""
    try:
        return orjson.dumps(value)[:100].decode(errors="replace")
    except (TypeError, orjson.JSONEncodeError):
        return "a value too deep to show"


def caster(function: ServiceFunction) -> Callable[[Any], Any]:
    """A JSON value as the declared return type: NULL stays NULL; a value that can't be one raises
    ValueError(value)."""
    convert = CONVERSIONS[sql_type(function.returns)]

    def cast(value: Any) -> Any:
        if value is None:
            return None
        try:
            return convert(value)
        except (ValueError, TypeError, OverflowError, RecursionError, ArithmeticError):
            raise ValueError(value) from None

    return cast


def to_boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return {"true": True, "false": False}[str(value).lower()] if isinstance(value, str) else to_error(value)


def to_bigint(value: Any) -> int:
    if isinstance(value, bool | dict | list):
        return to_error(value)
    number = Decimal(value) if isinstance(value, str) else Decimal(repr(value) if isinstance(value, float) else value)
    if number != number.to_integral_value() or not -(2**63) <= number < 2**63:
        return to_error(value)
    return int(number)


def to_double(value: Any) -> float:
    return to_error(value) if isinstance(value, bool | dict | list) else float(value)


def to_error(value: Any) -> Any:
    raise ValueError(value)


CONVERSIONS: dict[str, Callable[[Any], Any]] = {
    "VARCHAR": lambda value: value if isinstance(value, str) else json.dumps(value),
    "JSON": json.dumps,
    "BOOLEAN": to_boolean,
    "BIGINT": to_bigint,
    "DOUBLE": to_double,
}


def sql_type(kind: str) -> str:
    """The DuckDB type a Snowflake type travels as: VARCHAR, BIGINT, DOUBLE, BOOLEAN or JSON."""
    base = kind.split("(")[0].upper()
    if base in ("NUMBER", "DECIMAL", "NUMERIC"):
        scale = kind.split(",")[1].rstrip(")").strip() if "," in kind else "0"
        return "BIGINT" if scale == "0" else "DOUBLE"
    if base in ("INT", "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "BYTEINT"):
        return "BIGINT"
    if base in ("FLOAT", "FLOAT4", "FLOAT8", "DOUBLE", "REAL"):
        return "DOUBLE"
    if base == "BOOLEAN":
        return "BOOLEAN"
    if base in ("VARIANT", "OBJECT", "ARRAY"):
        return "JSON"
    return "VARCHAR"


def json_arguments(kinds: Sequence[str], columns: list[list[Any]]) -> list[tuple]:
    """The rows of a chunk as they go into the JSON body: VARIANT, OBJECT and ARRAY arguments travel as
    JSON text and go in parsed; the others go in as they are."""
    for kind, column in zip(kinds, columns, strict=True):
        if sql_type(kind) == "JSON":
            column[:] = [None if value is None else json.loads(value) for value in column]
    return list(zip(*columns, strict=True))
