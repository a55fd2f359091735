"""Everything that adapts fakesnow (DuckDB and sqlglot underneath), which runs the SQL the local SPCS
doesn't answer itself. The fixes, for what the tutorials and Snowpark send:

- one shared instance that keeps each database as a file under the data dir's `databases/`, and its
  global catalog (stages, column lengths) too: fakesnow keeps that in memory, lost on restart;
- DuckDB locked to the databases' and the stages' folders: SQL reads and writes no other file, installs
  and loads no extension, and can't change that (see lock_down); stage folders never step out of
  the stages, whatever a name holds;
- staged files kept under the data dir too (fakesnow keeps them in a temp folder, lost on restart);
- Snowpark's `CREATE TABLE t If NOT EXISTS (...)` sent as `CREATE TABLE IF NOT EXISTS t (...)`;
- `PUT file:///dir/*.yaml` (`snow stage copy` with a glob) quoted, so that `/*` is no comment;
- `current_warehouse()` and `current_role()` answered with the session's own values;
- a column named like the tutorial's unaliased literal (`'hello'`) no longer breaks fakesnow's catalog;
- Snowpark's `system$cancel_all_queries` on close, answered without fakesnow (its session is busy);
- service functions, as DuckDB functions that call the service (service_functions.py does the calling),
  with the unused-columns optimizer off, so that `count(*)` over a call still makes the call, as in
  Snowflake.
"""

import contextlib
import inspect
import json
import re
import shutil
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from spcs_local.emulator import DATABASE, SCHEMA
from spcs_local.emulator.catalog import ObjectName, ServiceFunction
from spcs_local.emulator.results import SnowflakeError
from spcs_local.emulator.service_functions import json_arguments, sql_type

Invoke = Callable[[str, list[tuple]], list[Any]]  # (call id, rows) -> results
ARROW_TYPES: dict[str, Callable[[Any], Any]] = {
    "VARCHAR": lambda pa: pa.string(),
    "JSON": lambda pa: pa.string(),
    "BIGINT": lambda pa: pa.int64(),
    "DOUBLE": lambda pa: pa.float64(),
    "BOOLEAN": lambda pa: pa.bool_(),
}

CANCEL_ALL_QUERIES = re.compile(r"^\s*select\s+system\$cancel_all_queries\b", re.I)
CREATE_IF_NOT_EXISTS = re.compile(r"^(\s*CREATE\s+(?:\w+\s+)*?TABLE)\s+(.+?)\s+IF\s+NOT\s+EXISTS\s*\(", re.I | re.S)
CONTEXT_FUNCTION = re.compile(r"\bcurrent_(warehouse|role|database|schema)\s*\(\s*\)", re.I)
UDF_FAILURE = re.compile(r"Python exception occurred while executing the UDF: (\w+): (.*)", re.S)
UNQUOTED_PUT_SOURCE = re.compile(r"^(\s*put\s+)(file://\S+)", re.I)
PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")


class DataInUse(Exception):
    """The data dir is open in another process; the message says which and what to do."""


def install(data_dir: Path) -> Any:
    """Set fakesnow up to keep its data under `data_dir`; returns its ASGI app."""
    # Imported here: fakesnow makes a temp folder on import, which only the server needs.
    import duckdb
    import fakesnow.cursor
    import fakesnow.info_schema
    import fakesnow.server
    import fakesnow.transforms.show
    import fakesnow.transforms.stage
    import snowflake.connector.errors
    from fakesnow.instance import GLOBAL_DATABASE_NAME, FakeSnow

    # First, before anything can fail: the import's temp folder gives way to one under the data dir.
    shutil.rmtree(fakesnow.transforms.stage.LOCAL_BUCKET_PATH, ignore_errors=True)
    stages, databases = data_dir / "stages", data_dir / "databases"
    stages.mkdir(parents=True, exist_ok=True)
    move_databases(data_dir, databases)
    fakesnow.transforms.stage.LOCAL_BUCKET_PATH = str(stages.resolve())
    stage_dir = fakesnow.transforms.stage.internal_dir

    def stage_dir_within_stages(fqname: str, path: str = "") -> str:
        # A stage is a folder named after its database, schema and name: none may step out of the stages.
        if any(part in ("", ".", "..") or "/" in part or "\\" in part or "\0" in part for part in fqname.split(".")):
            raise snowflake.connector.errors.ProgrammingError(
                msg=f"The local Snowflake emulator keeps stages as folders: name the stage, its schema and its "
                f"database without '/', '\\' or '.' (not {fqname!r}).",
                errno=2,
                sqlstate="0A000",
            )
        return stage_dir(fqname, path)

    fakesnow.transforms.stage.internal_dir = stage_dir_within_stages

    insert_text_lengths_sql = fakesnow.info_schema.insert_text_lengths_sql

    def insert_text_lengths_sql_escaped(catalog: str, schema: str, table: str, lengths: list[tuple[str, int]]) -> str:
        return insert_text_lengths_sql(catalog, schema, table, [(n.replace("'", "''"), size) for n, size in lengths])

    fakesnow.info_schema.insert_text_lengths_sql = insert_text_lengths_sql_escaped
    shared = FakeSnow(db_path=databases)
    shared.duck_conn.execute(f"DETACH {GLOBAL_DATABASE_NAME}")
    try:
        shared.duck_conn.execute(f"ATTACH '{(databases / '_fs_global.duckdb').resolve()}' AS {GLOBAL_DATABASE_NAME}")
    except duckdb.IOException as error:  # DuckDB's file lock: another emulator has this data open
        holder = re.search(r"PID (\d+)", str(error))
        raise DataInUse(
            f"{data_dir} is in use by another emulator{f' (PID {holder[1]})' if holder else ''}: stop it "
            "(make local-down), or give this one another --data-dir."
        ) from None
    shared.duck_conn.execute(fakesnow.info_schema.fs_global_creation_sql())
    shared.duck_conn.execute(fakesnow.transforms.show.fs_global_creation_sql())
    shared.duck_conn.execute("SET GLOBAL disabled_optimizers = 'unused_columns'")
    lock_down(shared.duck_conn, [databases, stages])
    cursor_execute = fakesnow.cursor.FakeSnowflakeCursor._execute

    def execute_with_function_errors(self: Any, *args: Any, **kwargs: Any) -> Any:
        # A service function's failure is the query's error, in the function's own words; an interrupted
        # statement (see cancel) was rolled back, and is Snowflake's "canceled".
        try:
            return cursor_execute(self, *args, **kwargs)
        except duckdb.InterruptException:
            raise canceled() from None
        except duckdb.PermissionException:
            raise snowflake.connector.errors.ProgrammingError(
                msg="SQL access control error:\nThe local Snowflake emulator gives SQL no access to files: only to "
                "its tables and stages.",
                errno=3001,
                sqlstate="42501",
            ) from None
        except duckdb.InvalidInputException as error:
            if match := UDF_FAILURE.search(str(error)):
                if match[1] == "Cancelled":
                    raise canceled() from None
                raise snowflake.connector.errors.ProgrammingError(
                    msg=match[2], errno=100351, sqlstate="P0001"
                ) from None
            raise

    def canceled() -> Exception:
        return snowflake.connector.errors.ProgrammingError(msg="SQL execution canceled", errno=604, sqlstate="57014")

    fakesnow.cursor.FakeSnowflakeCursor._execute = execute_with_function_errors
    create_database = fakesnow.transforms.create_database

    def create_database_named_safely(expression: Any, db_path: Path | None = None) -> Any:
        # A database is a file named after it: a name that isn't a plain identifier can't be one.
        created = create_database(expression, db_path=db_path)
        name = created.args.get("create_db_name")
        if name is not None and not PLAIN_NAME.fullmatch(name):
            raise snowflake.connector.errors.ProgrammingError(
                msg=f"The local Snowflake emulator keeps databases as files: name yours with letters, digits, "
                f"'_' and '$' (not {name!r}).",
                errno=2,
                sqlstate="0A000",
            )
        return created

    fakesnow.transforms.create_database = create_database_named_safely
    fakesnow.server.shared_fs = shared
    # The tutorials' database and schema exist from the start, as after their Common Setup; a login
    # never creates one (see login_context).
    shared.connect(DATABASE, SCHEMA).close()
    warnings.filterwarnings("ignore", message="Arrow output on a DB-API result")
    return fakesnow.server.app


def move_databases(data_dir: Path, databases: Path) -> None:
    """Databases live in their own folder, apart from the local SPCS's state: data dirs of earlier
    versions kept them at the top."""
    databases.mkdir(exist_ok=True)
    for file in [*data_dir.glob("*.db"), *data_dir.glob("*.db.wal"), *data_dir.glob("_fs_global.duckdb*")]:
        file.replace(databases / file.name)


def lock_down(connection: Any, folders: list[Path]) -> None:
    """SQL reaches no file but the databases' and the stages': no read_text('/etc/passwd'), no COPY to a host
    path, no ATTACH elsewhere, no extensions installed or loaded; and no statement can change that."""
    allowed = ", ".join(sql_string(f"{folder.resolve()}/") for folder in folders)
    connection.execute(f"SET allowed_directories = [{allowed}]")
    for setting in ("enable_external_access", "autoinstall_known_extensions", "autoload_known_extensions",
                    "allow_community_extensions"):  # fmt: skip
        connection.execute(f"SET {setting} = false")
    connection.execute("SET lock_configuration = true")


def stage_path(relative: str) -> Path | None:
    """Where a file uploaded to `DB/SCHEMA/STAGE/file` goes; None when that is not a file on a stage."""
    import fakesnow.transforms.stage

    root = Path(fakesnow.transforms.stage.LOCAL_BUCKET_PATH).resolve()
    parts = Path(relative).parts
    if len(parts) < 4 or any(part in ("..", ".", "/") or "\0" in part for part in parts):
        return None
    target = (root / relative).resolve()
    return target if target.is_relative_to(root) and target.parent != root else None


def rewrite(sql: str, context: dict[str, str | None]) -> str:
    """The statement as fakesnow can run it, in this session's context: its warehouse, role, database and
    schema (NULL when it has none; DuckDB would name its own)."""
    values = {name: context.get(name) for name in ("warehouse", "role", "database", "schema")}
    sql = CREATE_IF_NOT_EXISTS.sub(r"\1 IF NOT EXISTS \2 (", sql, count=1)
    sql = UNQUOTED_PUT_SOURCE.sub(lambda m: m[1] + sql_string(m[2]), sql, count=1)
    return CONTEXT_FUNCTION.sub(lambda m: sql_string(values[m.group(1).lower()]), sql)


def without_call_ids(answer: bytes, call_ids: Iterable[str]) -> bytes:
    """Result columns named as Snowflake names them, MY_ECHO_UDF(MESSAGE_TEXT), without the call ids
    the statement layer added to the calls."""
    ids = [call_id for call_id in call_ids if call_id.encode() in answer]
    if not ids:
        return answer
    body = json.loads(answer)
    for column in (body.get("data") or {}).get("rowtype") or []:
        if any(call_id in column["name"] for call_id in ids):
            column["name"] = re.sub(r",?\s*'(" + "|".join(map(re.escape, ids)) + r")'", "", column["name"]).upper()
    return json.dumps(body).encode()


def sql_string(value: str | None) -> str:
    return "NULL" if value is None else "'" + value.replace("'", "''") + "'"


def current_database_and_schema(token: str) -> tuple[str | None, str | None]:
    """The session's database and schema, which fakesnow keeps (USE DATABASE, USE SCHEMA)."""
    import fakesnow.server

    connection = fakesnow.server.sessions.get(token)
    return (connection.database, connection.schema) if connection else (None, None)


def login_context(database: str | None, schema: str | None) -> tuple[str | None, str | None]:
    """The database and schema a login gets: those that exist, as Snowflake gives them (a session
    without a current database when it doesn't exist)."""
    import fakesnow.server

    def exists(catalog: str, schema: str | None = None) -> bool:
        query = "select 1 from information_schema.schemata where upper(catalog_name) = ?"
        values = [catalog.strip('"').upper()]
        if schema is not None:
            query, values = query + " and upper(schema_name) = ?", [*values, schema.strip('"').upper()]
        cursor = fakesnow.server.shared_fs.duck_conn.cursor()
        try:
            return cursor.execute(query, values).fetchone() is not None
        finally:
            cursor.close()

    if not database or not exists(database):
        return None, None
    return database, schema if schema and exists(database, schema) else None


def cancel(token: str | None = None) -> None:
    """Interrupt the statement the session runs, or every session's: DuckDB rolls it back, and its client
    gets Snowflake's "SQL execution canceled". A session running nothing is not affected."""
    import fakesnow.server

    sessions = fakesnow.server.sessions
    connections = list(sessions.values()) if token is None else [sessions[token]] if token in sessions else []
    for connection in connections:
        connection._duck_conn.interrupt()


def end_session(token: str) -> None:
    import fakesnow.server

    with contextlib.suppress(KeyError):
        del fakesnow.server.sessions[token]


class StageFiles:
    """Files PUT on a stage (`snow stage copy`), where fakesnow keeps them."""

    def read(self, stage: ObjectName, path: str) -> str:
        import fakesnow.transforms.stage

        root = Path(fakesnow.transforms.stage.LOCAL_BUCKET_PATH, stage.database, stage.schema, stage.name)
        file = (root / path.lstrip("/")).resolve()
        if not file.is_relative_to(root.resolve()) or not file.is_file():
            raise SnowflakeError(
                f"Specification file '{path}' was not found on stage @{stage}: upload it first "
                f"(PUT file://{Path(path).name} @{stage.name} AUTO_COMPRESS=FALSE, or snow stage copy)."
            )
        return file.read_text()


class DuckFunctions:
    """Service functions as DuckDB functions of fakesnow's shared database, one per name."""

    def __init__(self, invoke: Invoke) -> None:
        import fakesnow.server

        self.connection, self.invoke = fakesnow.server.shared_fs.duck_conn, invoke
        self.registered: dict[str, tuple] = {}  # name -> the signature it was registered with

    def sync(self, functions: Iterable[ServiceFunction]) -> None:
        wanted = {}
        for function in functions:
            wanted.setdefault(function.name, (tuple(kind for _, kind in function.arguments), function.returns))
        for name in [name for name in self.registered if wanted.get(name) != self.registered[name]]:
            self.connection.remove_function(name)
            del self.registered[name]
        for name, (arguments, returns) in wanted.items():
            if name not in self.registered:
                parameters = [*(sql_type(kind) for kind in arguments), "VARCHAR"]  # and the call id
                self.connection.create_function(
                    name, self.call_for(arguments, returns), parameters, sql_type(returns),
                    type="arrow", null_handling="special", side_effects=True,
                )  # fmt: skip
                self.registered[name] = (arguments, returns)

    def call_for(self, arguments: tuple[str, ...], returns: str) -> Callable[..., Any]:
        """DuckDB hands the function a chunk of rows at a time (up to 2048), as Arrow columns; the last
        column is the call id that the statement layer added."""
        import pyarrow

        arrow_type = ARROW_TYPES[sql_type(returns)](pyarrow)

        def call(*columns: Any) -> Any:
            call_id = columns[-1][0].as_py()
            rows = json_arguments(arguments, [column.to_pylist() for column in columns[:-1]])
            return pyarrow.array(self.invoke(call_id, rows), type=arrow_type)

        # DuckDB counts a Python function's parameters from its signature.
        positional = inspect.Parameter.POSITIONAL_ONLY
        call.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [inspect.Parameter(f"column_{n}", positional) for n in range(len(arguments) + 1)]
        )
        return call

    def close(self) -> None:
        """Unregister them all: a DuckDB function left at exit makes the interpreter complain."""
        for name in list(self.registered):
            self.connection.remove_function(name)
        self.registered.clear()
