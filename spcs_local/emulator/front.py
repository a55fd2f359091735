"""The Snowflake protocol, as the connector (and so Snowpark and `snow`) speaks it: logins, queries,
asynchronous results and session tokens. An ASGI app in front of fakesnow's.

- A statement the local SPCS answers runs in a worker thread. If it is not done within
  `poll_seconds`, the answer is "in progress" (code 333333) with a result URL the client polls, as
  Snowflake does for long statements: a job that outlasts the client's socket timeout is not sent
  (and run) twice, and a repeated request id gets the same query again.
- Any other statement goes to fakesnow, in the session's context (see fakesnow_fixes).
- Nothing answers HTTP 500 or a traceback: a failure is a Snowflake error (`success: false`, a
  code, a message naming the statement), so that clients fail at once instead of retrying.
  Tracebacks go to the emulator's log; a client's own mistake (guard.Refused) gets a 4xx and no log line.
- Who may connect, and how much they may send, is guard's: Host names, peers, JSON bodies, bounds,
  sessions' expiry and cap, tickets for stage uploads. Cancel reaches everything a session waits on.
"""

import asyncio
import itertools
import json
import logging
import re
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import anyio.to_thread

from spcs_local.emulator import ACCOUNT, PASSWORD, ROLE, USER, event_table, fakesnow_fixes
from spcs_local.emulator.guard import (
    LOGIN_BODY_BYTES,
    QUERY_BODY_BYTES,
    SQL_TEXT_BYTES,
    UPLOAD_BYTES,
    Doors,
    Refused,
    Sessions,
    Tickets,
    body_chunks,
    key_pair_ok,
    read_body,
    require_json,
)
from spcs_local.emulator.results import Result, SnowflakeError, json_value
from spcs_local.emulator.service_functions import CallContext, Caller
from spcs_local.emulator.statements import Context, Run, Statements, statement_count

Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]

logger = logging.getLogger("spcs_local.emulator")
IN_PROGRESS = "333333"
RESULT_PATH = re.compile(r"^/queries/([0-9a-f-]{36})/result$")
KEPT_QUERIES = 256  # finished queries kept for a client that polls again
FAKESNOW_THREADS = 32
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
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # fakesnow runs one statement a session at once
    running: dict[str, Context] = field(default_factory=dict)  # query id -> its context, for cancel


@dataclass
class Query:
    token: str  # the session whose query it is: only it may ask for the result
    task: asyncio.Future


class Front:
    def __init__(
        self,
        fakesnow_app: Any,
        statements: Statements,
        caller: Caller,
        poll_seconds: float = 20.0,
        doors: Doors | None = None,
        service_token: Callable[[str, bool], bool] = lambda token, as_caller: False,
        user_keys: Callable[[str], dict[str, str]] = lambda user: {},
    ) -> None:
        self.app, self.fakesnow = fakesnow_app, Fakesnow(fakesnow_app)
        self.statements, self.caller, self.poll_seconds = statements, caller, poll_seconds
        self.doors, self.service_token, self.user_keys = doors or Doors(), service_token, user_keys
        self.sessions: Sessions[Session] = Sessions(self.session_ended)
        self.callers: Sessions[str] = Sessions(lambda token, user: None)  # browsers' caller tokens -> user
        self.callers_lock = threading.Lock()  # the ingress issues them from its own thread
        self.queries: OrderedDict[str, Query] = OrderedDict()
        self.requests: dict[str, str] = {}  # request id -> query id
        self.tickets = Tickets()
        self.session_ids = itertools.count(int(time.time()) * 1000)  # numbers, as Snowflake's are

    async def __call__(self, scope: dict, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        try:
            self.doors.check(scope)
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
                self.cancel(session_token(scope))
                await reply(send, 200, b'{"data": null, "code": null, "message": null, "success": true}')
            elif match := RESULT_PATH.match(path):
                await self.answer(send, match[1], session_token(scope))
            elif path.startswith("/fs_bucket/"):
                await self.upload(scope, receive, send)
            elif path.startswith("/api/v2/remote-build/"):
                await self.remote_build(scope, receive, send)
            else:
                token, body = session_token(scope), await read_body(scope, receive, LOGIN_BODY_BYTES)
                closing = path == "/session" and ("delete", "true") in parse_query(scope)  # a client closes its session
                if closing:
                    self.cancel(token)
                await self.forward(scope, body, send)
                if closing:
                    self.sessions.end(token)
        except Refused as refused:  # the client's mistake: one answer, nothing in the log
            body = {"data": None, "code": str(refused.status), "message": str(refused), "success": False}
            await reply(send, refused.status, json.dumps(body).encode())
        except Exception as error:  # never a 500: the client would retry it, and it is our bug
            logger.exception("%s failed", path)
            message = f"The local Snowflake emulator failed on {path}: {type(error).__name__}: {error}"
            await reply(send, 200, error_body(SnowflakeError(message, "000603", "XX000")))

    def cancel_all(self) -> None:
        """Cancel what every session runs and waits on (service functions too), as when the emulator stops."""
        fakesnow_fixes.cancel()
        self.caller.cancel()

    def close(self) -> None:
        self.cancel_all()
        self.fakesnow.close()

    # --- sessions -----------------------------------------------------------------------------

    async def login(self, scope: dict, receive: Receive, send: Send) -> None:
        require_json(scope)
        body = parse_json(await read_body(scope, receive, LOGIN_BODY_BYTES))
        data = body.get("data")
        if not isinstance(data, dict):
            raise Refused(400, "A login request holds its fields in `data`.")
        login_name = str(data.get("LOGIN_NAME") or "")
        if str(data.get("AUTHENTICATOR") or "").upper() == "SNOWFLAKE_JWT":  # a key-pair login: its TOKEN is a JWT
            if not key_pair_ok(str(data.get("TOKEN") or ""), login_name, self.user_keys(login_name)):
                await reply(send, 200, error_body(SnowflakeError("JWT token is invalid.", "390144", "08004")))
                return
            by_credentials, token = True, ""
        else:
            by_credentials = password_ok(login_name, str(data.get("PASSWORD") or ""))
            token = str(data.get("TOKEN") or "")
        # An OAuth token is a workload's (mounted in its containers) or a live session's; or, for caller's rights,
        # an executeAsCaller service's then a caller's, joined by a dot: the session is the caller's.
        workload, _, caller_token = token.partition(".")
        caller = self.caller_of(caller_token) if caller_token and self.service_token(workload, True) else None
        if not (by_credentials or caller or (token and (self.service_token(token, False) or token in self.sessions))):
            failure = SnowflakeError("Incorrect username or password was specified.", "390100", "08004")
            await reply(send, 200, error_body(failure))
            return
        # fakesnow would take a database file path from the client (FAKESNOW_DB_PATH) and regular
        # expressions of statements to skip: neither is a client's to choose.
        parameters = data.get("SESSION_PARAMETERS")
        parameters = parameters if isinstance(parameters, dict) else {}
        data["SESSION_PARAMETERS"] = {k: v for k, v in parameters.items()
                                      if str(k).upper() not in ("FAKESNOW_DB_PATH", "NOP_REGEXES")}  # fmt: skip
        raw = json.dumps(body).encode()
        # A database or schema that doesn't exist is not the session's (and not created), as in Snowflake.
        params = dict(parse_query(scope))
        context = fakesnow_fixes.login_context(params.get("databaseName"), params.get("schemaName"))
        params = {k: v for k, v in params.items() if k not in ("databaseName", "schemaName")}
        params |= {name: value for name, value in zip(("databaseName", "schemaName"), context, strict=True) if value}
        scope = {**scope, "query_string": urlencode(params).encode()}
        status, headers, answer = await self.fakesnow.call(with_body(scope, raw), raw)
        result = json.loads(answer)
        if result.get("success"):
            token = result["data"]["token"]
            # A master token lets the client end its session on close, and connector 5.x wants a session id and the
            # whole session context (fakesnow gives none of them).
            result["data"].update(masterToken=token, validityInSeconds=3600, masterValidityInSeconds=14400,
                                  sessionId=next(self.session_ids))  # fmt: skip
            info = result["data"].setdefault("sessionInfo", {})
            info |= {"warehouseName": params.get("warehouse") and identifier(params["warehouse"]),
                     "roleName": identifier(params.get("roleName", ROLE))}  # fmt: skip
            warehouse = params.get("warehouse")
            self.sessions.add(token, Session(
                caller or str(data.get("LOGIN_NAME") or USER), identifier(params.get("roleName", ROLE)),
                warehouse and identifier(warehouse),
            ))  # fmt: skip
        await reply(send, status, json.dumps(result).encode(), headers)

    def user_of(self, token: str) -> str | None:
        """The user of a live session's token."""
        session = self.sessions.get(token)
        return session.user.upper() if session else None

    def caller_token(self, user: str) -> str:
        """A caller token for a user who logged in to a public endpoint with a browser: what the ingress sends an
        executeAsCaller service as Sf-Context-Current-User-Token, as it sends a program's session token."""
        token = secrets.token_urlsafe(32)
        with self.callers_lock:
            self.callers.add(token, user)
        return token

    def caller_of(self, token: str) -> str | None:
        """The user of a caller token: a live session's, or a browser's."""
        with self.callers_lock:
            return self.user_of(token) or self.callers.get(token)

    def session_ended(self, token: str, session: Session) -> None:
        """A session closed, expired or pushed out by newer ones: what it runs stops, and fakesnow forgets it."""
        self.cancel(token, session)
        fakesnow_fixes.end_session(token)

    async def token(self, scope: dict, receive: Receive, send: Send) -> None:
        """A session token for the image registry (`snow spcs image-registry login|token`)."""
        require_json(scope)
        body = parse_json(await read_body(scope, receive, LOGIN_BODY_BYTES))
        old = str(body.get("oldSessionToken", ""))
        if old not in self.sessions or session_token(scope) != old:
            failure = SnowflakeError("Session no longer exists. New login required to access the service.", "390112")
            await reply(send, 200, error_body(failure))
            return
        data = {"sessionToken": old, "validityInSecondsST": 3600, "masterToken": old, "validityInSecondsMT": 14400}
        await reply(send, 200, json.dumps({"data": data, "success": True}).encode())

    def cancel(self, token: str, session: Session | None = None) -> None:
        """Cancel what the session runs: its statement in fakesnow, its service-function calls and its jobs."""
        fakesnow_fixes.cancel(token)
        session = session or self.sessions.get(token)
        for query_id, context in list(session.running.items()) if session else []:
            context.cancelled.set()
            self.caller.cancel(query_id)

    # --- queries ------------------------------------------------------------------------------

    async def query(self, scope: dict, receive: Receive, send: Send) -> None:
        require_json(scope)
        token = session_token(scope)
        session = self.sessions.get(token)
        raw = await read_body(scope, receive, QUERY_BODY_BYTES if session else LOGIN_BODY_BYTES)
        body = parse_json(raw)
        if session is None:  # fakesnow answers: the client must log in again
            await self.forward(scope, raw, send)
            return
        request_id = dict(parse_query(scope)).get("requestId")
        if request_id in self.requests:  # the client sent it again (a timeout, a retry): no second run
            await self.answer(send, self.requests[request_id], token)
            return
        sql = body.get("sqlText")
        if not isinstance(sql, str):
            raise Refused(400, "A query request holds its statement in `sqlText`.")
        if len(sql.encode()) > SQL_TEXT_BYTES:
            await reply(send, 200, error_body(too_long(len(sql.encode()))))
            return
        if fakesnow_fixes.CANCEL_ALL_QUERIES.match(sql):
            self.cancel(token)
            await reply(send, 200, result_body(Result.status("Queries cancelled."), str(uuid.uuid4()), None))
            return
        query_id = str(uuid.uuid4())
        context = Context(
            session.user, session.role, session.warehouse, *fakesnow_fixes.current_database_and_schema(token)
        )
        try:  # parsing a long statement takes time: never on the event loop
            run = await anyio.to_thread.run_sync(self.prepare, sql, body, context, session, query_id, token)
        except SnowflakeError as error:
            await reply(send, 200, error_body(error))
            return
        if run is None:
            session.running[query_id] = context
            try:
                async with session.lock:
                    await self.forward(scope, json.dumps(body).encode(), send, sql, query_id, token)
            finally:
                self.caller.close(query_id)
                session.running.pop(query_id, None)
            return

        def execute() -> tuple[Result, Context]:
            try:
                result = run(context)
            finally:
                session.running.pop(query_id, None)
            session.role, session.warehouse = context.role, context.warehouse
            return result, context

        session.running[query_id] = context
        self.queries[query_id] = Query(token, asyncio.ensure_future(anyio.to_thread.run_sync(execute)))
        if request_id:
            self.requests[request_id] = query_id
        self.forget_old_queries()
        await self.answer(send, query_id, token)

    def prepare(
        self, sql: str, body: dict, context: Context, session: Session, query_id: str, token: str
    ) -> Run | None:
        """What the local SPCS runs for the statement; None when fakesnow runs it, with `body` rewritten for
        fakesnow and the calls of service functions opened."""
        if (count := statement_count(sql)) > 1:  # refused before anything runs, as Snowflake does by default
            raise several_statements(count, body.get("parameters") or {})
        run = self.statements.parse(sql, fakesnow_fixes.session_variables(token))
        if run is not None:
            return run
        for_fakesnow, calls = self.statements.service_function_calls(sql, context, query_id)
        values = {"warehouse": session.warehouse, "role": session.role, "database": context.database,
                  "schema": context.schema, "user": session.user.upper()}  # fmt: skip
        if event_table.reads(for_fakesnow, str(self.statements.catalog.event_table)):
            for_fakesnow = event_table.readable(for_fakesnow)
        body["sqlText"] = fakesnow_fixes.rewrite(for_fakesnow, values)
        self.caller.open(CallContext(query_id, session.user, session.role, context.database, context.schema,
                                     session.warehouse, ACCOUNT), calls)  # fmt: skip
        return None

    async def answer(self, send: Send, query_id: str, token: str) -> None:
        """The query's result, or "in progress" with the URL to poll when it runs on; only to its own session."""
        query = self.queries.get(query_id)
        if query is None or query.token != token or token not in self.sessions:
            await reply(send, 200, error_body(SnowflakeError(f"No query with id {query_id}.", "000709", "02000")))
            return
        task = query.task
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
            query_id, query = next(iter(self.queries.items()))
            if not query.task.done():
                break
            del self.queries[query_id]
            for request_id in [r for r, q in self.requests.items() if q == query_id]:
                del self.requests[request_id]

    async def forward(
        self, scope: dict, body: bytes, send: Send, sql: str | None = None, query_id: str = "", token: str = ""
    ) -> None:
        """Let fakesnow answer; its failures become Snowflake errors naming the statement."""
        try:
            status, headers, answer = await self.fakesnow.call(with_body(scope, body), body)
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
        if query_id:
            answer = fakesnow_fixes.without_call_ids(answer, self.caller.call_ids(query_id))
        if sql and fakesnow_fixes.has_follow_up(sql) and json.loads(answer).get("success"):
            await anyio.to_thread.run_sync(fakesnow_fixes.after_statement, token, sql)
        if b'"presignedUrl"' in answer and token:
            answer = self.with_ticket(answer, token)
        await reply(send, status, answer, headers)

    # --- stage uploads ------------------------------------------------------------------------

    def with_ticket(self, answer: bytes, token: str) -> bytes:
        """A PUT's answer, its upload URL carrying a ticket for this session and this file only."""
        body = json.loads(answer)
        stage_info = (body.get("data") or {}).get("stageInfo") or {}
        url = stage_info.get("presignedUrl")
        if not url:
            return answer
        path = unquote(urlsplit(url).path).removeprefix("/fs_bucket/")
        stage_info["presignedUrl"] = f"{url}?ticket={self.tickets.issue(token, path)}"
        return json.dumps(body).encode()

    async def remote_build(self, scope: dict, receive: Receive, send: Send) -> None:
        """The remote-build REST API (`snow spcs service remote-build`): a session's, answered in plain JSON."""
        token = session_token(scope)
        session = self.sessions.get(token)
        if session is None:
            raise Refused(401, "Log in first: the remote-build API takes a session's token.")
        post = scope["method"] == "POST"
        body = parse_json(await read_body(scope, receive, LOGIN_BODY_BYTES)) if post else {}
        database, schema = fakesnow_fixes.current_database_and_schema(token)
        context = Context(session.user, session.role, session.warehouse, database, schema)
        route = scope["path"].removeprefix("/api/v2/remote-build/")
        try:
            if route == "execute" and post:
                answer = await anyio.to_thread.run_sync(self.statements.submit_build, context, body)
            elif route == "jobs" and not post:
                answer = self.statements.build_jobs()
            elif route.startswith("jobs/") and not post:
                answer = self.statements.build_job(context, route.removeprefix("jobs/"))
                if answer is None:
                    raise Refused(404, f"There is no remote build job {route.removeprefix('jobs/')}.")
            else:
                raise Refused(404, f"The remote-build API has no {scope['method']} {scope['path']}.")
        except SnowflakeError as error:
            raise Refused(400, error.message) from None
        await reply(send, 200, json.dumps(answer).encode())

    async def upload(self, scope: dict, receive: Receive, send: Send) -> None:
        """A file of a PUT, streamed to its stage: bounded, and whole or not at all."""
        if scope["method"] != "PUT":
            raise Refused(405, "Stage files are uploaded with PUT.")
        relative = scope["path"].removeprefix("/fs_bucket/")
        token = self.tickets.check(dict(parse_query(scope)).get("ticket", ""), relative)
        if token not in self.sessions:
            raise Refused(403, "The session that asked for this upload has ended.")
        target = fakesnow_fixes.stage_path(relative)
        if target is None:
            raise Refused(400, "That path is not on a stage.")
        await anyio.to_thread.run_sync(lambda: target.parent.mkdir(parents=True, exist_ok=True))
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
        try:
            with partial.open("wb") as file:
                async for chunk in body_chunks(scope, receive, UPLOAD_BYTES):
                    await anyio.to_thread.run_sync(file.write, chunk)
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
        await reply(send, 200, b"", content_type=b"text/plain")


class Fakesnow:
    """fakesnow's app, run on worker threads that each keep an event loop of their own: what it does
    synchronously (sqlglot parsing a long statement, DuckDB) never holds up the front's loop, so other
    clients get their answers meanwhile."""

    def __init__(self, app: Any, threads: int = FAKESNOW_THREADS) -> None:
        self.app = app
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="fakesnow")
        self.local = threading.local()

    async def call(self, scope: dict, body: bytes) -> tuple[int, list, bytes]:
        return await asyncio.wrap_future(self.pool.submit(self.run, scope, body))

    def run(self, scope: dict, body: bytes) -> tuple[int, list, bytes]:
        if not hasattr(self.local, "loop"):
            self.local.loop = asyncio.new_event_loop()
        return self.local.loop.run_until_complete(call(self.app, scope, body))

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def password_ok(user: str, password: str) -> bool:
    """The local SPCS's one user and password."""
    return secrets.compare_digest(user.encode(), USER.encode()) & secrets.compare_digest(
        password.encode(), PASSWORD.encode()
    )


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


def parse_json(raw: bytes) -> dict:
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise Refused(400, "The request body is not JSON.") from None
    if not isinstance(body, dict):
        raise Refused(400, "The request body is not a JSON object.")
    return body


def too_long(size: int) -> SnowflakeError:
    return SnowflakeError(
        f"SQL compilation error:\nThe statement is {size:,} bytes long; Snowflake takes statements of up to "
        f"{SQL_TEXT_BYTES:,} bytes (1 MB).", "001003", "42000"
    )  # fmt: skip


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
