"""Tutorial 2's job: run a query with Snowpark and append its result to a table.

Inside SPCS it logs in with the OAuth token Snowflake gives the container; elsewhere with
SNOWFLAKE_* env vars (password or key pair) or a named connection from connections.toml.
Any failure is one ERROR line and exit code 1, so that SPCS marks the job FAILED, and a
table the job created for a query that then failed is dropped.
"""

import argparse
import contextlib
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

from snowflake.connector.errors import Error as ConnectorError
from snowflake.snowpark import Session
from snowflake.snowpark.exceptions import SnowparkClientException, SnowparkSessionException, SnowparkSQLException

# Snowflake writes the container's short-lived OAuth token here.
TOKEN_PATH = "/snowflake/session/token"
# SPCS sets SNOWFLAKE_ACCOUNT, _HOST, _PORT (443), _DATABASE and _SCHEMA; the spec sets _WAREHOUSE. Inside
# SPCS the job connects with these over HTTPS, the connector's default, as the tutorial's code does.
SPCS_PARAMS = ("account", "host", "port", "database", "schema", "warehouse")
# Outside SPCS, the SNOWFLAKE_<NAME> env vars that map to a connection parameter <name>.
ENV_PARAMS = (*SPCS_PARAMS, "protocol", "user", "password", "role", "private_key_file", "private_key_file_pwd")

# After a failure, how long closing the session (or dropping a table the job created) may take: an
# unreachable Snowflake would otherwise hold the job for another network timeout each.
CLEANUP_SECONDS = 3

# An unquoted or double-quoted identifier, optionally qualified: [db.][schema.]table.
IDENTIFIER = r'(?:[A-Za-z_][A-Za-z0-9_$]{0,254}|"(?:[^"]|""){1,255}")'
TABLE_NAME = re.compile(rf"{IDENTIFIER}(?:\.{IDENTIFIER}){{0,2}}")


class JobError(Exception):
    """A failure of the job that its message explains in one line."""


class Terminated(BaseException):
    """SIGTERM arrived: SPCS is stopping the job."""


def get_arg_parser() -> argparse.ArgumentParser:
    """Input argument list."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--query", required=True, help="query text to execute")
    parser.add_argument(
        "--result_table",
        required=True,
        help="name of the table to store result of query specified by flag --query",
    )
    return parser


def get_logger() -> logging.Logger:
    """Get a logger for local logging."""
    logger = logging.getLogger("job-tutorial")
    logger.setLevel(logging.DEBUG)
    handler = logging.StreamHandler(sys.stdout)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(name)s - %(levelname)s - %(message)s"))
    logger.addHandler(handler)
    return logger


def get_login_token() -> str:
    """Read the login token supplied by Snowflake. It is short-lived: read it right before connecting."""
    try:
        with open(TOKEN_PATH) as f:
            return f.read().strip()
    except (OSError, UnicodeDecodeError) as error:
        problem = getattr(error, "strerror", None) or "not text"
        raise JobError(f"the login token {TOKEN_PATH!r} cannot be read: {problem}") from None


def get_connection_params() -> dict[str, Any]:
    """Snowflake connection parameters, from the SPCS token, env vars or a named connection."""
    env = {name: value for name in ENV_PARAMS if (value := os.getenv(f"SNOWFLAKE_{name.upper()}"))}
    # Bounded, so that an unreachable backend fails the job instead of hanging it.
    timeouts = {"login_timeout": 60, "network_timeout": 300}
    for name in timeouts:
        if value := os.getenv(f"SNOWFLAKE_{name.upper()}"):
            if not value.isdigit():
                raise JobError(f"SNOWFLAKE_{name.upper()} must be a whole number of seconds, got {value!r}")
            timeouts[name] = int(value)
    if "port" in env and not (env["port"].isdigit() and 1 <= int(env["port"]) <= 65535):
        raise JobError(f"SNOWFLAKE_PORT must be a port number, got {env['port']!r}")
    if os.path.exists(TOKEN_PATH):
        spcs = {name: value for name, value in env.items() if name in SPCS_PARAMS}
        return {**spcs, "authenticator": "oauth", "token": get_login_token(), **timeouts}
    if name := os.getenv("SNOWFLAKE_CONNECTION_NAME"):
        return {"connection_name": name, **timeouts}  # the connector reads connections.toml itself
    if "account" not in env:
        raise JobError(
            "no Snowflake connection configured: set SNOWFLAKE_CONNECTION_NAME to a connection in "
            "connections.toml, or SNOWFLAKE_ACCOUNT, SNOWFLAKE_USER and SNOWFLAKE_PASSWORD"
        )
    if key_file := env.pop("private_key_file", None):
        try:
            open(key_file, "rb").close()
        except OSError as error:
            raise JobError(f"SNOWFLAKE_PRIVATE_KEY_FILE {key_file!r} cannot be read: {error.strerror}") from None
        env.update(authenticator="SNOWFLAKE_JWT", private_key_file=key_file)
    return {**env, **timeouts}


def run_job() -> None:
    """Main body of this job."""
    logger = get_logger()
    logger.info("Job started")

    # Parse input arguments
    args = get_arg_parser().parse_args()
    query = args.query
    result_table = args.result_table
    if not query.strip():
        raise JobError("--query is empty")
    if not TABLE_NAME.fullmatch(result_table):
        raise JobError(f"--result_table {result_table!r} is not a valid Snowflake table name")

    # Start a Snowflake session, run the query and write results to specified table
    with closed_at_the_end(Session.builder.configs(get_connection_params()).create()) as session:
        # Print out current session context information.
        database = session.get_current_database()
        schema = session.get_current_schema()
        warehouse = session.get_current_warehouse()
        role = session.get_current_role()
        logger.info(
            f"Connection succeeded. Current session context: database={database}, schema={schema}, "
            f"warehouse={warehouse}, role={role}"
        )

        # Execute query and persist results in a table.
        logger.info(f"Executing query [{query}] and writing result to table [{result_table}]")
        res = session.sql(query)
        # If the table already exists, the query result must match the table scheme.
        # If the table does not exist, this will create a new table.
        existed = table_exists(session, result_table)
        try:
            res.write.mode("append").save_as_table(result_table)
        except BaseException:
            if not existed:  # created for a query that failed: leave nothing behind
                drop = session.sql(f"drop table if exists {result_table}").collect
                within(CLEANUP_SECONDS, session.cancel_all, drop)
            raise

    logger.info("Job finished")


@contextlib.contextmanager
def closed_at_the_end(session: Session) -> Iterator[Session]:
    """The session, closed when the block ends. After a failure (SIGTERM included) what it still runs is
    cancelled first, so that nothing half-done commits, all within CLEANUP_SECONDS."""
    try:
        yield session
    except BaseException:
        within(CLEANUP_SECONDS, session.cancel_all, session.close)
        raise
    session.close()


def table_exists(session: Session, table: str) -> bool:
    try:
        session.sql(f"describe table {table}").collect()
    except (ConnectorError, SnowparkSQLException) as error:
        if (getattr(error, "sql_error_code", None) or getattr(error, "errno", None)) == 2003:  # does not exist
            return False
        raise  # Snowflake unreachable, say: the job fails now, not after another network timeout
    return True


def within(seconds: float, *steps: Callable[[], Any]) -> None:
    """Run cleanup steps, in order, for at most `seconds` in all, in the background: if Snowflake is gone,
    the job won't wait for it."""
    worker = threading.Thread(target=quietly, args=steps, daemon=True)
    worker.start()
    worker.join(seconds)


def quietly(*steps: Callable[[], Any]) -> None:
    for step in steps:
        with contextlib.suppress(Exception):  # the failure that made the cleanup needed is the one to report
            step()


def quiet_thread_errors(args: threading.ExceptHookArgs) -> None:
    """The connector's own threads (a query's cancel timer) fail too once Snowflake is gone: the job
    reports the failure once, in its ERROR line, without their tracebacks."""
    if not isinstance(args.exc_value, ConnectorError):
        threading.__excepthook__(args)


def terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def main() -> int:
    """Run the job; the exit code tells SPCS whether it is DONE (0) or FAILED."""
    signal.signal(signal.SIGTERM, terminate)
    threading.excepthook = quiet_thread_errors
    logger = logging.getLogger("job-tutorial")
    try:
        run_job()
    except (Exception, Terminated) as error:
        # Closing the session may fail after the failure that ended the job: report that one.
        while isinstance(error, SnowparkSessionException) and isinstance(error.__context__, Exception | Terminated):
            error = error.__context__
        if isinstance(error, Terminated):
            logger.error("Job stopped: SIGTERM received")
            # The session is closed. A query the signal cut short can leave the connector's query
            # timer (a non-daemon thread) running for the network timeout: leave without waiting.
            logging.shutdown()
            os._exit(143)
        known = isinstance(error, JobError | ConnectorError | SnowparkClientException)
        problem = str(error) if known else f"{type(error).__name__}: {error}"
        # One line that names the problem; these messages never hold a password or token.
        logger.error("Job failed: %s", " ".join(problem.split()))
        # As after SIGTERM: a connector thread may still be retrying a call for the network timeout.
        logging.shutdown()
        os._exit(1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
