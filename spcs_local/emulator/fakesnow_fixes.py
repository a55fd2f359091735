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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import astuple
from pathlib import Path
from typing import Any

from spcs_local.emulator import ACCOUNT, DATABASE, ORGANIZATION, REGION, SCHEMA
from spcs_local.emulator.catalog import ObjectName, ServiceFunction
from spcs_local.emulator.results import SnowflakeError, does_not_exist
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
CONTEXT_FUNCTION = re.compile(
    r"\bcurrent_(warehouse|role|database|schema|user|account|account_name|organization_name|region)\s*\(\s*\)", re.I
)
NAME = r'("(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
CREATE_DATABASE = re.compile(
    rf"^\s*create\s+(?:or\s+replace\s+)?(?:transient\s+)?database\s+(?:if\s+not\s+exists\s+)?{NAME}", re.I
)
USE_DATABASE = re.compile(rf"^\s*use\s+database\s+{NAME}\s*;?\s*$", re.I)
UDF_FAILURE = re.compile(r"Python exception occurred while executing the UDF: (\w+): (.*)", re.S)
UNQUOTED_PUT_SOURCE = re.compile(r"^(\s*put\s+)(file://\S+)", re.I)
PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
CONTEXT_BYTES = 512 * 2**20  # the largest build context a remote build reads


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
        if not all(map(folder_name, fqname.split("."))):
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
    shared.connect(DATABASE, "PUBLIC").close()
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
    """The statement as fakesnow can run it, in this session's context: its warehouse, role, database,
    schema and user (NULL when it has none; DuckDB would name its own), and the account's names."""
    values = {name: context.get(name) for name in ("warehouse", "role", "database", "schema", "user")}
    values |= {"account": ACCOUNT.upper(), "account_name": ACCOUNT.upper(), "organization_name": ORGANIZATION,
               "region": REGION}  # fmt: skip
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
    if not database or not schema_exists(database):
        return None, None
    return database, schema if schema and schema_exists(database, schema) else None


def cancel(token: str | None = None) -> None:
    """Interrupt the statement the session runs, or every session's: DuckDB rolls it back, and its client
    gets Snowflake's "SQL execution canceled". A session running nothing is not affected."""
    import fakesnow.server

    sessions = fakesnow.server.sessions
    connections = list(sessions.values()) if token is None else [sessions[token]] if token in sessions else []
    for connection in connections:
        connection._duck_conn.interrupt()


def has_follow_up(sql: str) -> bool:
    return bool(CREATE_DATABASE.match(sql) or USE_DATABASE.match(sql))


def session_variables(token: str) -> dict[str, str]:
    """The session's variables (SET name = value), by name in uppercase, their values as SQL literals."""
    import fakesnow.server

    connection = fakesnow.server.sessions.get(token)
    return {name.upper(): value for name, value in connection.variables._variables.items()} if connection else {}


def after_statement(token: str, sql: str) -> None:
    """What Snowflake does beside a statement fakesnow ran: CREATE DATABASE gives the database its PUBLIC schema
    and makes it current, and USE DATABASE selects PUBLIC when there is one."""
    import fakesnow.server

    created, used = CREATE_DATABASE.match(sql), USE_DATABASE.match(sql)
    connection = fakesnow.server.sessions.get(token)
    if connection is None or not (created or used):
        return
    name = (created or used)[1]
    cursor = connection.cursor()
    if created:
        cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {name}.PUBLIC")
    if schema_exists(name, "PUBLIC"):
        cursor.execute(f"USE SCHEMA {name}.PUBLIC")


def schema_exists(database: str, schema: str | None = None) -> bool:
    """Whether the database (and the schema in it) exists; names as SQL writes them, quoted or not."""
    import fakesnow.server

    query = "select 1 from information_schema.schemata where upper(catalog_name) = ?"
    values = [identifier(database).upper()]
    if schema is not None:
        query, values = query + " and upper(schema_name) = ?", [*values, identifier(schema).upper()]
    cursor = fakesnow.server.shared_fs.duck_conn.cursor()
    try:
        return cursor.execute(query, values).fetchone() is not None
    finally:
        cursor.close()


def identifier(name: str) -> str:
    return name[1:-1].replace('""', '"') if name.startswith('"') else name.upper()


def end_session(token: str) -> None:
    import fakesnow.server

    with contextlib.suppress(KeyError):
        del fakesnow.server.sessions[token]


class Storage:
    """Where fakesnow keeps databases, schemas and stages: files PUT on a stage (`snow stage copy`), and the drops
    that free them."""

    def read(self, stage: ObjectName, path: str) -> str:
        root = stage_folder(stage.database, stage.schema, stage.name)
        file = (root / path.lstrip("/")).resolve()
        if not file.is_relative_to(root.resolve()) or not file.is_file():
            raise SnowflakeError(
                f"Specification file '{path}' was not found on stage @{stage}: upload it first "
                f"(PUT file://{Path(path).name} @{stage.name} AUTO_COMPRESS=FALSE, or snow stage copy)."
            )
        return file.read_text()

    def folder(self, stage: ObjectName) -> Path:
        """The folder of a stage that exists, where its files are: what a stage volume mounts."""
        where = "database_name = ? and schema_name = ? and name = ?"
        if not run_global(f"select 1 from {STAGES} where {where}", astuple(stage)):
            raise does_not_exist("Stage", str(stage))
        folder = stage_folder(stage.database, stage.schema, stage.name)
        folder.mkdir(parents=True, exist_ok=True)
        return folder.resolve()

    def read_folder(self, stage: ObjectName, folder: str) -> dict[str, bytes]:
        """The files under a folder of a stage (a remote build's context), by their path in it: at most
        CONTEXT_BYTES in all."""
        root = stage_folder(stage.database, stage.schema, stage.name).resolve()
        top = (root / folder.strip("/")).resolve()
        if not top.is_relative_to(root) or not top.is_dir():
            raise SnowflakeError(
                f"Nothing was uploaded to @{stage}/{folder.strip('/')}: upload the build context first."
            )
        found, size = {}, 0
        for file in sorted(path for path in top.rglob("*") if path.is_file() and not path.is_symlink()):
            size += file.stat().st_size
            if size > CONTEXT_BYTES:
                raise SnowflakeError(f"The build context on @{stage} is over {CONTEXT_BYTES // 2**20} MiB.")
            found[file.relative_to(top).as_posix()] = file.read_bytes()
        return found

    def drop_stage(self, stage: ObjectName) -> bool:
        """Drop the stage and its files; False when there is no such stage."""
        where = "database_name = ? and schema_name = ? and name = ?"
        if not run_global(f"select 1 from {STAGES} where {where}", astuple(stage)):
            return False
        run_global(f"delete from {STAGES} where {where}", astuple(stage))
        shutil.rmtree(stage_folder(stage.database, stage.schema, stage.name), ignore_errors=True)
        return True

    def drop_schema(self, database: str, schema: str) -> bool:
        """Drop the schema with its tables, views and stages; False when there is no such schema."""
        if not schema_exists(quoted(database), quoted(schema)):
            return False
        run_global(f"DROP SCHEMA {quoted(database)}.{quoted(schema)} CASCADE")
        run_global(f"delete from {STAGES} where database_name = ? and schema_name = ?", [database, schema])
        shutil.rmtree(stage_folder(database, schema), ignore_errors=True)
        return True

    def drop_database(self, database: str) -> bool:
        """Drop the database with all it holds, its file included; False when there is no such database. A
        session that was using it has no current database any more, as in Snowflake."""
        import fakesnow.server

        if not schema_exists(quoted(database)):
            return False
        for connection in list(fakesnow.server.sessions.values()):
            if connection.database == database:
                connection._duck_conn.execute("USE memory.main")
                connection.database, connection._schema = None, None
                connection.database_set = connection.schema_set = False
        run_global(f"DETACH {quoted(database)}")
        run_global(f"delete from {STAGES} where database_name = ?", [database])
        shutil.rmtree(stage_folder(database), ignore_errors=True)
        folder = Path(fakesnow.server.shared_fs.db_path)
        for file in (folder / f"{database}.db", folder / f"{database}.db.wal"):
            file.unlink(missing_ok=True)
        return True


STAGES = "_fs_global._fs_information_schema._fs_stages"


def folder_name(part: str) -> bool:
    """Whether a name can be one folder under the stages: never a path, never a step out."""
    return part not in ("", ".", "..") and not any(c in part for c in "/\\\0")


def stage_folder(*parts: str) -> Path:
    """A database's, a schema's or a stage's folder under the stages, its names checked as path parts."""
    import fakesnow.transforms.stage

    root = Path(fakesnow.transforms.stage.LOCAL_BUCKET_PATH)
    folder = root.joinpath(*parts)
    if not all(map(folder_name, parts)):
        raise SnowflakeError(f"The local Snowflake emulator keeps stages as folders: {'.'.join(parts)!r} can't be one.")
    return folder


@contextlib.contextmanager
def shared_connection() -> Iterator[Any]:
    """A cursor of fakesnow's shared instance outside any client's session: Snowflake SQL, fakesnow's transforms."""
    import fakesnow.server

    connection = fakesnow.server.shared_fs.connect()
    cursor = connection.cursor()
    try:
        yield cursor
    finally:
        cursor.close()
        connection.close()


def run_global(sql: str, values: Iterable[Any] = ()) -> list[tuple]:
    """A statement on fakesnow's shared database, outside any session."""
    import fakesnow.server

    cursor = fakesnow.server.shared_fs.duck_conn.cursor()
    try:
        cursor.execute(sql, list(values))
        return cursor.fetchall() if cursor.description else []
    finally:
        cursor.close()


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


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
