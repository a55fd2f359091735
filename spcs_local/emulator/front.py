"""The Snowflake protocol, as the connector (and so Snowpark and `snow`) speaks it: logins, queries,
asynchronous results and session tokens. An ASGI app in front of fakesnow's.

- A statement the local SPCS answers runs in a worker thread. If it is not done within
  `poll_seconds`, the answer is "in progress" (code 333333) with a result URL the client polls, as
  Snowflake does for long statements: a job that outlasts the client's socket timeout is not sent
  (and run) twice, and a repeated request id gets the same query again.
- Any other statement goes to fakesnow, in the session's context (see fakesnow_fixes).
- Nothing answers HTTP 500 or a traceback: a failure is a Snowflake error (`success: false`, a
  code, a message naming the statement), so that clients fail at once instead of retrying.
  Tracebacks go to the emulator's log.
"""

import asyncio
import gzip
import json
import logging
import re
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

import anyio.to_thread

from spcs_local.emulator import ACCOUNT, OAUTH_TOKEN, PASSWORD, ROLE, USER, fakesnow_fixes
from spcs_local.emulator.results import Result, SnowflakeError, json_value
from spcs_local.emulator.service_functions import CallContext, Caller
from spcs_local.emulator.statements import Context, Statements, statement_count

Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]

logger = logging.getLogger("spcs_local.emulator")
IN_PROGRESS = "333333"
RESULT_PATH = re.compile(r"^/queries/([0-9a-f-]{36})/result$")
KEPT_QUERIES = 256  # finished queries kept for a client that polls again
TEXT = {"length": 16777216, "byteLength": 16777216, "precision": None, "scale": None}
TYPES = {
    "text": TEXT,
    "fixed": {"length": None, "byteLength": None, "precision": 38, "scale": 0},
    "boolean": {"length": None, "byteLength": None, "precision": None, "scale": None},
    "timestamp_ltz": {"length": None, "byteLength": None, "precision": 0, "scale": 9},
}


@dataclass
class Session:
    user: str
    role: str
    warehouse: str | None


class Front:
    def __init__(self, fakesnow_app: Any, statements: Statements, caller: Caller, poll_seconds: float = 20.0) -> None:
        self.app, self.statements, self.caller, self.poll_seconds = fakesnow_app, statements, caller, poll_seconds
        self.sessions: dict[str, Session] = {}
        self.queries: OrderedDict[str, asyncio.Task] = OrderedDict()
        self.requests: dict[str, str] = {}  # request id -> query id

    async def __call__(self, scope: dict, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        try:
            if path == "/healthcheck":
                await reply(send, 200, b"I'm ready!", content_type=b"text/plain")
            elif path == "/telemetry/send":
                await reply(send, 200, b'{"success": true}')
            elif path == "/session/v1/login-request":
                await self.login(scope, receive, send)
            elif path == "/session/token-request":
                await self.token(scope, receive, send)
            elif path == "/queries/v1/query-request":
                await self.query(scope, receive, send)
            elif path == "/queries/v1/abort-request":  # the connector cancels a query (a timeout, Ctrl-C)
                fakesnow_fixes.cancel(session_token(scope))
                await reply(send, 200, b'{"data": null, "code": null, "message": null, "success": true}')
            elif match := RESULT_PATH.match(path):
                await self.answer(send, match[1])
            else:
                if path == "/session" and ("delete", "true") in parse_query(scope):  # a client closes its session
                    fakesnow_fixes.cancel(session_token(scope))
                    self.sessions.pop(session_token(scope), None)
                await self.forward(scope, await read_body(scope, receive), send)
        except Exception as error:  # never a 500: the client would retry it, and it is our bug
            logger.exception("%s failed", path)
            message = f"The local Snowflake emulator failed on {path}: {type(error).__name__}: {error}"
            await reply(send, 200, error_body(SnowflakeError(message, "000603", "XX000")))

    # --- sessions -----------------------------------------------------------------------------

    async def login(self, scope: dict, receive: Receive, send: Send) -> None:
        body = json.loads(await read_body(scope, receive))
        data = body.get("data") or {}
        if not (
            data.get("TOKEN") == OAUTH_TOKEN or (data.get("LOGIN_NAME") == USER and data.get("PASSWORD") == PASSWORD)
        ):
            failure = SnowflakeError("Incorrect username or password was specified.", "390100", "08004")
            await reply(send, 200, error_body(failure))
            return
        raw = json.dumps(body).encode()
        # A database or schema that doesn't exist is not the session's (and not created), as in Snowflake.
        params = dict(parse_query(scope))
        context = fakesnow_fixes.login_context(params.get("databaseName"), params.get("schemaName"))
        params = {k: v for k, v in params.items() if k not in ("databaseName", "schemaName")}
        params |= {name: value for name, value in zip(("databaseName", "schemaName"), context, strict=True) if value}
        scope = {**scope, "query_string": urlencode(params).encode()}
        status, headers, answer = await call(self.app, with_body(scope, raw), raw)
        result = json.loads(answer)
        if result.get("success"):
            token = result["data"]["token"]
            # A master token lets the client end its session on close (fakesnow gives none).
            result["data"].update(masterToken=token, validityInSeconds=3600, masterValidityInSeconds=14400)
            params = dict(parse_query(scope))
            warehouse = params.get("warehouse")
            self.sessions[token] = Session(
                data.get("LOGIN_NAME") or USER,
                identifier(params.get("roleName", ROLE)),
                warehouse and identifier(warehouse),
            )
        await reply(send, status, json.dumps(result).encode(), headers)

    async def token(self, scope: dict, receive: Receive, send: Send) -> None:
        """A session token for the image registry (`snow spcs image-registry login|token`)."""
        body = json.loads(await read_body(scope, receive))
        old = body.get("oldSessionToken", "")
        if old not in self.sessions or session_token(scope) != old:
            failure = SnowflakeError("Session no longer exists. New login required to access the service.", "390112")
            await reply(send, 200, error_body(failure))
            return
        data = {"sessionToken": old, "validityInSecondsST": 3600, "masterToken": old, "validityInSecondsMT": 14400}
        await reply(send, 200, json.dumps({"data": data, "success": True}).encode())

    # --- queries ------------------------------------------------------------------------------

    async def query(self, scope: dict, receive: Receive, send: Send) -> None:
        raw = await read_body(scope, receive)
        body = json.loads(raw)
        token, request_id = session_token(scope), dict(parse_query(scope)).get("requestId")
        if request_id in self.requests:  # the client sent it again (a timeout, a retry): no second run
            await self.answer(send, self.requests[request_id])
            return
        session = self.sessions.get(token)
        sql = body.get("sqlText", "")
        if session is None:  # fakesnow answers: the client must log in again
            await self.forward(scope, raw, send)
            return
        if (count := statement_count(sql)) > 1:  # refused before anything runs, as Snowflake does by default
            await reply(send, 200, error_body(several_statements(count, body.get("parameters") or {})))
            return
        if fakesnow_fixes.CANCEL_ALL_QUERIES.match(sql):
            fakesnow_fixes.cancel(token)
            await reply(send, 200, result_body(Result.status("Queries cancelled."), str(uuid.uuid4()), None))
            return
        context = Context(
            session.user, session.role, session.warehouse, *fakesnow_fixes.current_database_and_schema(token)
        )
        try:
            run = self.statements.parse(sql)
        except SnowflakeError as error:
            await reply(send, 200, error_body(error))
            return
        if run is None:
            query_id = str(uuid.uuid4())
            for_fakesnow, calls = self.statements.service_function_calls(sql, context, query_id)
            values = {"warehouse": session.warehouse, "role": session.role, "database": context.database,
                      "schema": context.schema}  # fmt: skip
            body["sqlText"] = fakesnow_fixes.rewrite(for_fakesnow, values)
            self.caller.open(CallContext(query_id, session.user, session.role, context.database, context.schema,
                                         session.warehouse, ACCOUNT), calls)  # fmt: skip
            try:
                await self.forward(scope, json.dumps(body).encode(), send, sql, calls)
            finally:
                self.caller.close(calls)
            return

        def execute() -> tuple[Result, Context]:
            result = run(context)
            session.role, session.warehouse = context.role, context.warehouse
            return result, context

        query_id = str(uuid.uuid4())
        self.queries[query_id] = asyncio.ensure_future(anyio.to_thread.run_sync(execute))
        if request_id:
            self.requests[request_id] = query_id
        self.forget_old_queries()
        await self.answer(send, query_id)

    async def answer(self, send: Send, query_id: str) -> None:
        """The query's result, or "in progress" with the URL to poll when it runs on."""
        task = self.queries.get(query_id)
        if task is None:
            await reply(send, 200, error_body(SnowflakeError(f"No query with id {query_id}.", "000709", "02000")))
            return
        done, _ = await asyncio.wait({task}, timeout=self.poll_seconds)
        if not done:
            data = {"queryId": query_id, "getResultUrl": f"/queries/{query_id}/result"}
            progress = {"data": data, "code": IN_PROGRESS, "message": "Query execution in progress.", "success": True}
            await reply(send, 200, json.dumps(progress).encode())
            return
        error = task.exception()
        if isinstance(error, SnowflakeError):
            await reply(send, 200, error_body(error, query_id))
        elif error is not None:
            logger.error("query %s failed", query_id, exc_info=error)
            failure = SnowflakeError(f"The local SPCS failed: {type(error).__name__}: {error}", "000603", "XX000")
            await reply(send, 200, error_body(failure, query_id))
        else:
            result, context = task.result()
            await reply(send, 200, result_body(result, query_id, context))

    def forget_old_queries(self) -> None:
        while len(self.queries) > KEPT_QUERIES:
            query_id, task = next(iter(self.queries.items()))
            if not task.done():
                break
            del self.queries[query_id]
            for request_id in [r for r, q in self.requests.items() if q == query_id]:
                del self.requests[request_id]

    async def forward(
        self, scope: dict, body: bytes, send: Send, sql: str | None = None, calls: Iterable[str] = ()
    ) -> None:
        """Let fakesnow answer; its failures become Snowflake errors naming the statement."""
        try:
            status, headers, answer = await call(self.app, with_body(scope, body), body)
        except Exception as error:
            logger.exception("fakesnow failed on %s", scope["path"])
            status, headers, answer = 500, [], str(error).encode()
        if status >= 500:  # fakesnow's bug, or a statement it doesn't support; its log has the traceback
            statement = " ".join((sql or scope["path"]).split())[:200]
            failure = SnowflakeError(
                f"SQL compilation error:\nThe local Snowflake emulator can't run this statement: {statement} "
                f"(unsupported here; the emulator's log has the details)",
                "000002",
                "0A000",
            )
            await reply(send, 200, error_body(failure))
            return
        await reply(send, status, fakesnow_fixes.without_call_ids(answer, calls), headers)


def several_statements(count: int, parameters: dict) -> SnowflakeError:
    """Snowflake runs one statement a request unless the client asks for more (MULTI_STATEMENT_COUNT);
    the emulator runs one statement a request in any case."""
    desired = parameters.get("MULTI_STATEMENT_COUNT", 1)
    if str(desired) in ("0", str(count)):
        message = f"The local Snowflake emulator runs one statement a request: send the {count} statements one by one."
        return SnowflakeError(message, "000002", "0A000")
    return SnowflakeError(f"Actual statement count {count} did not match the desired statement count {desired}.",
                          "000008", "0A000")  # fmt: skip


# --- the wire format ------------------------------------------------------------------------------


def result_body(result: Result, query_id: str, context: Context | None) -> bytes:
    rowtype = [
        {"name": c.name, "database": "", "schema": "", "table": "", "nullable": True, "type": c.type, "collation": None}
        | TYPES[c.type]
        for c in result.columns
    ]
    data = {
        "rowtype": rowtype,
        "rowset": [[json_value(value) for value in row] for row in result.rows],
        "total": len(result.rows),
        "returned": len(result.rows),
        "queryId": query_id,
        "statementTypeId": 4096,
        "queryResultFormat": "json",
        "parameters": [],
        "finalDatabaseName": context and context.database,
        "finalSchemaName": context and context.schema,
    }
    return json.dumps({"data": data, "success": True, "code": None, "message": None}).encode()


def error_body(error: SnowflakeError, query_id: str | None = None) -> bytes:
    data = {"errorCode": error.code, "sqlState": error.sqlstate, "queryId": query_id or str(uuid.uuid4())}
    return json.dumps({"data": data, "code": error.code, "message": error.message, "success": False}).encode()


def identifier(name: str) -> str:
    """How Snowflake stores a name: unquoted ones in uppercase."""
    return name[1:-1].replace('""', '"') if name.startswith('"') else name.upper()


def session_token(scope: dict) -> str:
    authorization = dict(scope["headers"]).get(b"authorization", b"").decode()
    return authorization.removeprefix('Snowflake Token="').removesuffix('"')


def parse_query(scope: dict) -> list[tuple[str, str]]:
    return parse_qsl(scope.get("query_string", b"").decode())


async def read_body(scope: dict, receive: Receive) -> bytes:
    """The request body, gunzipped when the client compressed it."""
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = b"".join(chunks)
    return gzip.decompress(body) if dict(scope["headers"]).get(b"content-encoding") == b"gzip" else body


def with_body(scope: dict, body: bytes) -> dict:
    """The same request, for a new plain (not gzipped) body."""
    headers = [(k, v) for k, v in scope["headers"] if k not in (b"content-encoding", b"content-length")]
    headers.append((b"content-length", str(len(body)).encode()))
    return {**scope, "headers": headers}


def replay(body: bytes) -> Receive:
    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def call(app: Any, scope: dict, body: bytes) -> tuple[int, list, bytes]:
    """Call an ASGI app and collect its whole answer."""
    answer: dict[str, Any] = {"body": b"", "status": 500, "headers": []}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            answer.update(status=message["status"], headers=message.get("headers", []))
        else:
            answer["body"] += message.get("body", b"")

    await app(scope, replay(body), send)
    return answer["status"], answer["headers"], answer["body"]


async def reply(
    send: Send, status: int, body: bytes, headers: list | None = None, content_type: bytes = b"application/json"
) -> None:
    headers = [(k, v) for k, v in headers or [] if k.lower() != b"content-length"]
    headers.append((b"content-length", str(len(body)).encode()))
    if not any(k.lower() == b"content-type" for k, _ in headers):
        headers.append((b"content-type", content_type))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
