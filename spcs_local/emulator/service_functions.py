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
import itertools
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import urllib3

from spcs_local.emulator.catalog import ServiceFunction

RETRY_STATUSES = {404, 429, 500, 502, 503, 504}
DEFAULT_MAX_BATCH_ROWS = 1000
IN_FLIGHT = 8  # batches in flight at once, across all queries
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


class Caller:
    """Calls service functions for the queries that run now: each call site has an id (see
    Statements.service_function_calls), open while its query runs."""

    def __init__(self, endpoint_url: Callable[[ServiceFunction], str]) -> None:
        self.endpoint_url = endpoint_url
        self.http = urllib3.PoolManager(maxsize=IN_FLIGHT, block=True, retries=False)
        self.pool = ThreadPoolExecutor(IN_FLIGHT, thread_name_prefix="service-function")
        self.sites: dict[str, tuple[CallContext, ServiceFunction, Iterator[int]]] = {}

    def open(self, context: CallContext, calls: dict[str, ServiceFunction]) -> None:
        self.sites |= {call_id: (context, function, itertools.count()) for call_id, function in calls.items()}

    def close(self, calls: dict[str, ServiceFunction]) -> None:
        for call_id in calls:
            self.sites.pop(call_id, None)

    def invoke(self, call_id: str, rows: list[list[Any]]) -> list[Any]:
        """A chunk of rows of one call site, as the function's query runs it. A batch's id is the call's
        and the batch's number: unique in the query, the same on a retry."""
        context, function, numbers = self.sites[call_id]
        batch_ids = (f"{call_id}:{number}" for number in numbers)
        return self.call(function, self.endpoint_url(function), context, rows, batch_ids)

    def call(
        self, function: ServiceFunction, url: str, context: CallContext, rows: list[list[Any]], batch_ids: Iterator[str]
    ) -> list[Any]:
        """Each row's result, in order: `rows` are the arguments of each call, `url` the endpoint's base."""
        size = function.max_batch_rows or DEFAULT_MAX_BATCH_ROWS
        batches = [rows[start : start + size] for start in range(0, len(rows), size)]
        futures = [
            self.pool.submit(self.batch, function, url + function.path, context, next(batch_ids), batch)
            for batch in batches
        ]
        return [value for future in futures for value in future.result()]

    def batch(self, function: ServiceFunction, url: str, context: CallContext, batch_id: str, rows: list) -> list:
        name = function.name
        body = json.dumps({"data": [[index, *row] for index, row in enumerate(rows)]}).encode()
        headers = headers_for(function, context, batch_id)
        deadline = time.monotonic() + function.batch_timeout_secs
        attempts, backoff, method = 0, FIRST_BACKOFF, "POST"
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return self.failed(function, rows, f"batch {batch_id} timed out after {function.batch_timeout_secs} s")
            try:
                reply = self.http.request(method, url, body=body if method == "POST" else None, headers=headers,
                                          timeout=urllib3.Timeout(total=remaining), preload_content=True)  # fmt: skip
                status, data = reply.status, reply.data
            except urllib3.exceptions.NewConnectionError as error:  # refused: the service is not (yet) there
                status, data = 0, str(error).encode()
            except urllib3.exceptions.TimeoutError:
                return self.failed(function, rows, f"batch {batch_id} timed out after {function.batch_timeout_secs} s")
            except urllib3.exceptions.HTTPError as error:  # reset, closed mid-answer
                status, data = 0, str(error).encode()
            if status == 200:
                return results(name, function.returns, rows, data)
            if status == 202:  # still working: ask again for the same batch
                method = "GET"
                time.sleep(min(backoff, max(deadline - time.monotonic(), 0)))
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            if status and status not in RETRY_STATUSES:
                answer = data[:200].decode(errors="replace")
                return self.failed(function, rows, f"the service answered HTTP {status} to batch {batch_id}: {answer}")
            if attempts >= function.max_batch_retries:
                what = f"answered HTTP {status} to" if status else f"could not be reached at {url} for"
                return self.failed(function, rows, f"the service {what} batch {batch_id}, {attempts + 1} times")
            attempts += 1
            time.sleep(min(backoff, max(deadline - time.monotonic(), 0)))
            backoff, method = min(backoff * 2, MAX_BACKOFF), "POST"

    @staticmethod
    def failed(function: ServiceFunction, rows: list, problem: str) -> list:
        """ON_BATCH_FAILURE: RETURN_NULL gives the batch's rows NULL; ABORT fails the query."""
        if function.on_batch_failure == "RETURN_NULL":
            return [None] * len(rows)
        raise ServiceFunctionError(f"Service function {function.name} failed: {problem}.")

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.http.clear()


def headers_for(function: ServiceFunction, context: CallContext, batch_id: str) -> dict[str, str]:
    signature = f"({', '.join(f'{name} {kind}' for name, kind in function.arguments)})"
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "snowflake/1.0",
        "sf-external-function-format": "json",
        "sf-external-function-format-version": "1.0",
        "sf-external-function-current-query-id": context.query_id,
        "sf-external-function-query-batch-id": batch_id,
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


def results(name: str, returns: str, rows: list, data: bytes) -> list:
    """The reply's values in row order, cast to the return type; an error naming the function otherwise."""
    try:
        reply = json.loads(data)
    except ValueError:
        raise ServiceFunctionError(f"Service function {name} failed: the service's reply is not JSON.") from None
    answered = reply.get("data") if isinstance(reply, dict) else None
    if not isinstance(answered, list) or len(answered) != len(rows):
        count = len(answered) if isinstance(answered, list) else "no"
        raise ServiceFunctionError(
            f"Service function {name} failed: the service answered {count} rows for a batch of {len(rows)}."
        )
    values = []
    for index, row in enumerate(answered):
        if not isinstance(row, list) or len(row) != 2 or type(row[0]) is not int or row[0] != index:
            raise ServiceFunctionError(
                f"Service function {name} failed: row {index} of the reply is {json.dumps(row)[:100]}, "
                f"not [{index}, value]."
            )
        values.append(cast(name, returns, row[1]))
    return values


def cast(name: str, returns: str, value: Any) -> Any:
    """A JSON value as the declared return type: NULL stays NULL; a value that can't be one is an error."""
    if value is None:
        return None
    kind = sql_type(returns)
    try:
        if kind == "VARCHAR":
            return value if isinstance(value, str) else json.dumps(value)
        if kind == "JSON":
            return json.dumps(value)
        if kind == "BOOLEAN":
            if isinstance(value, bool):
                return value
            return {"true": True, "false": False}[str(value).lower()]
        if kind == "BIGINT":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        return float(value)  # DOUBLE
    except (ValueError, TypeError, KeyError):
        raise ServiceFunctionError(
            f"Service function {name} failed: the service answered {json.dumps(value)[:100]}, not a {returns}."
        ) from None


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


def json_argument(kind: str) -> Callable[[Any], Any]:
    """How an argument of the declared type goes into the JSON body."""
    if sql_type(kind) == "JSON":
        return lambda value: None if value is None else json.loads(value)
    return lambda value: value
