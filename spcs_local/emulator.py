"""The embedded Snowflake emulator: fakesnow's Snowflake-protocol server on 127.0.0.1.

A real, unchanged Snowpark Session connects to it with host, port and protocol=http. This module
closes the gaps the tutorials hit (see the README's list of what is not emulated):

- logins are checked against one user and password, or an OAuth token as SPCS gives a container;
- a login reply carries a master token, so a client's close ends the session instead of hanging;
- Snowpark's `system$cancel_all_queries` on close succeeds, even while a query runs;
- `current_warehouse()` and `current_role()` answer with the session's own values;
- Snowpark's `CREATE TABLE t If NOT EXISTS (...)` is sent as `CREATE TABLE IF NOT EXISTS t (...)`;
- a column named like the tutorial's unaliased literal (`'hello'`) no longer breaks the catalog.

`python -m spcs_local.emulator` prints the client environment as `export` lines and serves until
SIGINT or SIGTERM. Data persists under --data-dir.
"""

import argparse
import gzip
import json
import re
import shlex
import shutil
import uuid
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import uvicorn

Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]

# The tutorials' names, as the emulator's defaults.
ACCOUNT, USER, PASSWORD = "tutorial", "tutorial_user", "tutorial_password"
OAUTH_TOKEN = "local-spcs-session-token"
DATABASE, SCHEMA, WAREHOUSE, ROLE = "TUTORIAL_DB", "DATA_SCHEMA", "TUTORIAL_WAREHOUSE", "TEST_ROLE"
DEFAULT_DATA_DIR = Path(".local/snowflake")

# Snowpark's close sends this; fakesnow would run it on the session's connection, busy with the query.
CANCEL_ALL_QUERIES = re.compile(r"^\s*select\s+system\$cancel_all_queries\b", re.I)
CREATE_IF_NOT_EXISTS = re.compile(r"^(\s*CREATE\s+(?:\w+\s+)*?TABLE)\s+(.+?)\s+IF\s+NOT\s+EXISTS\s*\(", re.I | re.S)
USE_CONTEXT = re.compile(r"^\s*USE\s+(WAREHOUSE|ROLE)\s+(\S+?)\s*;?\s*$", re.I)
CONTEXT_FUNCTION = re.compile(r"\bcurrent_(warehouse|role)\s*\(\s*\)", re.I)


def client_env(port: int, host: str = "127.0.0.1") -> dict[str, str]:
    """The environment a client (the Tutorial 2 job, `snow`, a notebook) needs to reach the emulator."""
    return {
        "SNOWFLAKE_ACCOUNT": ACCOUNT,
        "SNOWFLAKE_USER": USER,
        "SNOWFLAKE_PASSWORD": PASSWORD,
        "SNOWFLAKE_HOST": host,
        "SNOWFLAKE_PORT": str(port),
        "SNOWFLAKE_PROTOCOL": "http",
        "SNOWFLAKE_DATABASE": DATABASE,
        "SNOWFLAKE_SCHEMA": SCHEMA,
        "SNOWFLAKE_WAREHOUSE": WAREHOUSE,
        "SNOWFLAKE_ROLE": ROLE,
    }


def connection_params(env: dict[str, str]) -> dict[str, str]:
    """SNOWFLAKE_* env vars as connector (and Snowpark) parameters: SNOWFLAKE_HOST -> host."""
    return {name.removeprefix("SNOWFLAKE_").lower(): value for name, value in env.items()}


class Emulator:
    """An ASGI app in front of fakesnow's: checks logins and fixes requests on their way in."""

    def __init__(self, fakesnow_app: Any) -> None:
        self.app = fakesnow_app
        self.contexts: dict[str, dict[str, str | None]] = {}  # session token -> {"warehouse": ..., "role": ...}

    async def __call__(self, scope: dict, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
        elif scope["path"] == "/healthcheck":
            await reply(send, 200, b"I'm ready!")
        elif scope["path"] == "/telemetry/send":
            await reply(send, 200, b'{"success": true}')
        elif scope["path"] == "/session/v1/login-request":
            await self.login(scope, receive, send)
        elif scope["path"] == "/queries/v1/query-request":
            await self.query(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def login(self, scope: dict, receive: Receive, send: Send) -> None:
        body = await read_json(scope, receive)
        data = body["data"]
        if not (
            data.get("TOKEN") == OAUTH_TOKEN or (data.get("LOGIN_NAME") == USER and data.get("PASSWORD") == PASSWORD)
        ):
            failure = {"data": None, "code": "390100", "message": "Incorrect username or password was specified."}
            await reply(send, 200, json.dumps({**failure, "success": False}).encode())
            return

        raw = json.dumps(body).encode()
        status, headers, answer = await call(self.app, with_body(scope, raw), raw)
        result = json.loads(answer)
        if result.get("success"):
            token = result["data"]["token"]
            # A master token lets the client end its session on close (fakesnow gives none).
            result["data"].update(masterToken=token, validityInSeconds=3600, masterValidityInSeconds=14400)
            params = dict(parse_query(scope))
            warehouse, role = params.get("warehouse"), params.get("roleName", ROLE)
            self.contexts[token] = {"warehouse": warehouse and identifier(warehouse), "role": identifier(role)}
        await reply(send, status, json.dumps(result).encode(), headers)

    async def query(self, scope: dict, receive: Receive, send: Send) -> None:
        body = await read_json(scope, receive)
        context = self.contexts.get(session_token(scope), {"warehouse": None, "role": ROLE})
        sql = body["sqlText"]
        if CANCEL_ALL_QUERIES.match(sql):
            await reply(send, 200, json.dumps(one_row_result("STATUS", "Queries cancelled.")).encode())
            return
        if use := USE_CONTEXT.match(sql):
            context[use.group(1).lower()] = identifier(use.group(2))
            sql = "SELECT 'Statement executed successfully.' AS status"
        sql = CREATE_IF_NOT_EXISTS.sub(r"\1 IF NOT EXISTS \2 (", sql, count=1)
        sql = CONTEXT_FUNCTION.sub(lambda m: sql_string(context[m.group(1).lower()]), sql)
        body["sqlText"] = sql
        raw = json.dumps(body).encode()
        await self.app(with_body(scope, raw), replay(raw), send)


def one_row_result(column: str, value: str) -> dict:
    """A query-request answer holding one text value, as Snowflake gives it in JSON format."""
    text = {"type": "text", "length": 16777216, "byteLength": 16777216, "precision": None, "scale": None}
    return {
        "data": {
            "rowtype": [{"name": column, "nullable": True, **text}],
            "rowset": [[value]],
            "total": 1,
            "returned": 1,
            "queryId": str(uuid.uuid4()),
            "statementTypeId": 4096,
            "queryResultFormat": "json",
            "parameters": [],
        },
        "success": True,
    }


def identifier(name: str) -> str:
    """How Snowflake stores a name: unquoted ones in uppercase."""
    return name[1:-1].replace('""', '"') if name.startswith('"') else name.upper()


def sql_string(value: str | None) -> str:
    return "NULL" if value is None else "'" + value.replace("'", "''") + "'"


def session_token(scope: dict) -> str:
    authorization = dict(scope["headers"]).get(b"authorization", b"").decode()
    return authorization.removeprefix('Snowflake Token="').removesuffix('"')


def parse_query(scope: dict) -> list[tuple[str, str]]:
    return parse_qsl(scope.get("query_string", b"").decode())


async def read_json(scope: dict, receive: Receive) -> Any:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = b"".join(chunks)
    if dict(scope["headers"]).get(b"content-encoding") == b"gzip":
        body = gzip.decompress(body)
    return json.loads(body)


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
    answer: dict[str, Any] = {"body": b""}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            answer.update(status=message["status"], headers=message.get("headers", []))
        else:
            answer["body"] += message.get("body", b"")

    await app(scope, replay(body), send)
    return answer["status"], answer["headers"], answer["body"]


async def reply(send: Send, status: int, body: bytes, headers: list | None = None) -> None:
    headers = [(k, v) for k, v in headers or [] if k.lower() != b"content-length"]
    headers.append((b"content-length", str(len(body)).encode()))
    if not any(k.lower() == b"content-type" for k, _ in headers):
        headers.append((b"content-type", b"application/json"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def serve(host: str, port: int, data_dir: Path) -> None:
    """Serve fakesnow behind the Emulator until SIGINT or SIGTERM."""
    # Imported here: fakesnow makes a temp folder on import, which only the server needs.
    import fakesnow.info_schema
    import fakesnow.server
    import fakesnow.transforms.stage
    from fakesnow.instance import FakeSnow

    insert_text_lengths_sql = fakesnow.info_schema.insert_text_lengths_sql

    def insert_text_lengths_sql_escaped(catalog: str, schema: str, table: str, lengths: list[tuple[str, int]]) -> str:
        # fakesnow's catalog insert, with quotes in column names (the tutorial's 'hello') escaped.
        return insert_text_lengths_sql(catalog, schema, table, [(n.replace("'", "''"), size) for n, size in lengths])

    fakesnow.info_schema.insert_text_lengths_sql = insert_text_lengths_sql_escaped
    data_dir.mkdir(parents=True, exist_ok=True)
    # One shared instance that attaches each database as a file under data_dir.
    fakesnow.server.shared_fs = FakeSnow(db_path=data_dir)
    warnings.filterwarnings("ignore", message="Arrow output on a DB-API result")
    try:
        uvicorn.run(Emulator(fakesnow.server.app), host=host, port=port, log_level="warning")
    finally:
        # The folder for staged files lives only as long as the server.
        shutil.rmtree(fakesnow.transforms.stage.LOCAL_BUCKET_PATH, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the embedded Snowflake emulator.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port to listen on (default 8765)")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="where tables persist")
    args = parser.parse_args()

    print("# The embedded Snowflake emulator. In another terminal, run these lines, then the job:")
    for name, value in client_env(args.port).items():
        print(f"export {name}={shlex.quote(value)}")
    print(flush=True)
    serve(args.host, args.port, args.data_dir)


if __name__ == "__main__":
    main()
