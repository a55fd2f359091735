"""`make demo`: the tutorials' whole flow, offline, in one command, with no Docker.

It starts the Echo service and the embedded Snowflake emulator on free loopback ports, the emulator
told where the Echo service answers (`--external-service echo_service:echoendpoint=http://...`), then:

- runs Tutorial 1's SQL from echo-service/sql/ statement by statement, as Snowsight would, showing
  each result: `my_echo_udf` is a service function, so the emulator sends its rows to the Echo
  service in batches, as Snowflake does;
- runs Tutorial 3's and Tutorial 2's jobs as processes, with the variables SPCS injects;
- shows the `results` table.

Everything it starts is stopped on success, failure, Ctrl-C or SIGTERM. Its data is kept apart from
the local SPCS's, under .local/demo.
"""

import argparse
import contextlib
import io
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from spcs_local.emulator import LOCAL_ONLY, client_env, connection_params
from spcs_local.processes import free_port, stop, wait_for_http

ROOT = Path(__file__).resolve().parent.parent
STEPS = 5
TUTORIAL_QUERY = "select current_time() as time,'hello'"
STOPPED = threading.Event()


class DemoFailed(Exception):
    """A step failed; the message says which and why."""


def header(step: int, text: str) -> None:
    print(f"\n=== Step {step}/{STEPS}: {text}", flush=True)


def start(
    started: list[subprocess.Popen], name: str, args: list[str], env: dict[str, str], log: Path
) -> subprocess.Popen:
    """Start a server in the background, logging to `log`; it joins `started`, which the demo stops by PID."""
    with log.open("w") as out:
        process = subprocess.Popen(
            args, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT, preexec_fn=restore_sigint
        )
    started.append(process)
    print(f"started the {name} (pid {process.pid}), log in {log}", flush=True)
    return process


def ready(url: str, process: subprocess.Popen, log: Path) -> None:
    """Wait for a server the demo started; if it stops instead, its log's last line says why."""
    try:
        wait_for_http(url, process)
    except (RuntimeError, TimeoutError) as error:
        last = log.read_text(errors="replace").strip().splitlines()[-1:]
        raise DemoFailed(f"{error}: {last[0]}" if last else str(error)) from None


def restore_sigint() -> None:
    """A child gets Ctrl-C again, even when the demo itself was started with SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def stop_on_ctrl_c_and_sigterm() -> None:
    """Ctrl-C or SIGTERM stops the demo, however it was started (a background job ignores SIGINT)."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        STOPPED.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)


def run(name: str, args: list[str], env: dict[str, str]) -> None:
    """Run one tutorial's job in the foreground, its log shown as it comes."""
    job = subprocess.run(args, env={**os.environ, **env}, check=False, preexec_fn=restore_sigint)
    if STOPPED.is_set():  # the job got the Ctrl-C too, and may have ended before the demo heard of it
        raise KeyboardInterrupt
    if job.returncode != 0:
        raise DemoFailed(f"{name} exited with code {job.returncode}")


def statements(file: Path) -> list[str]:
    """A SQL file's statements, as Snowsight runs them one by one."""
    from snowflake.connector.util_text import split_statements  # once the demo has imported the connector

    return [text for text, _ in split_statements(io.StringIO(file.read_text()), remove_comments=True)]


def show(cursor: Any, statement: str) -> None:
    """Run a statement and show it with its result, as Snowsight does."""
    print(f"\n> {statement}", flush=True)
    rows = cursor.execute(statement).fetchall()
    columns = [column.name for column in cursor.description]
    if columns == ["status"] and len(rows) == 1:
        print(rows[0][0], flush=True)
    else:
        print_table(columns, rows)


def print_table(columns: list[str], rows: list) -> None:
    """Rows as Snowsight's result grid shows them: a column per field, a line per row."""
    cells = [columns, *(["NULL" if value is None else str(value) for value in row] for row in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    rule = "+" + "+".join("-" * (width + 2) for width in widths) + "+"
    print(rule)
    for n, line in enumerate(cells):
        print("| " + " | ".join(value.ljust(width) for value, width in zip(line, widths, strict=True)) + " |")
        if n == 0:
            print(rule)
    print(rule, flush=True)


def demo(local_dir: Path) -> None:
    logs = local_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    snowflake_port, echo_port = free_port(), free_port()
    snowflake_env = client_env(snowflake_port)
    echo_url = f"http://127.0.0.1:{echo_port}"
    python = sys.executable
    os.environ.update(LOCAL_ONLY)  # and in this process's own connection

    with contextlib.ExitStack() as stack:
        started: list[subprocess.Popen] = []
        stack.callback(lambda: stop(*started))  # both at once
        header(1, "start the Echo service (Tutorial 1) as Bob, and the embedded Snowflake emulator")
        echo_log = logs / "echo-service.log"
        echo = start(
            started,
            f"Echo service on {echo_url}",
            [python, str(ROOT / "echo-service" / "echo_service.py")],
            {"SERVER_HOST": "127.0.0.1", "SERVER_PORT": str(echo_port), "CHARACTER_NAME": "Bob", "SERVER_WORKERS": "1"},
            echo_log,
        )
        emulator = start(
            started,
            f"Snowflake emulator on 127.0.0.1:{snowflake_port}, where echo_service's endpoint is {echo_url}",
            [python, "-m", "spcs_local.emulator", "--port", str(snowflake_port), "--data-dir",
             str(local_dir / "snowflake"), "--external-service", f"echo_service:echoendpoint={echo_url}"],
            {},
            logs / "snowflake.log",
        )  # fmt: skip
        # Imported only now, so that its half second of imports overlaps the servers' start.
        import snowflake.connector

        ready(f"{echo_url}/healthcheck", echo, echo_log)
        ready(f"http://127.0.0.1:{snowflake_port}/healthcheck", emulator, logs / "snowflake.log")
        print("both are ready", flush=True)

        header(2, "Tutorial 1's SQL, from echo-service/sql/: my_echo_udf sends its rows to the Echo service")
        try:
            connection = stack.enter_context(snowflake.connector.connect(**connection_params(snowflake_env)))
            tutorials(connection.cursor(), echo_url, echo_log, snowflake_env, local_dir)
        except snowflake.connector.errors.Error as error:
            raise DemoFailed(str(error)) from None


def tutorials(cursor: Any, echo_url: str, echo_log: Path, snowflake_env: dict[str, str], local_dir: Path) -> None:
    """Steps 2 to 5, once both servers answer: Tutorial 1's SQL, both jobs, and Tutorial 2's result."""
    sql = ROOT / "echo-service" / "sql"
    for statement in statements(sql / "create_service.sql"):
        if "FUNCTION" in statement.split("(")[0].upper():  # the service runs as a process (step 1)
            show(cursor, statement)
    for statement in statements(sql / "use_service.sql"):
        show(cursor, statement)
    batches = [line for line in echo_log.read_text().splitlines() if "] [INFO] Received" in line]
    print(f"\nThe Echo service's log ({echo_log}) shows each batch it received:", *batches, sep="\n", flush=True)

    header(3, "Tutorial 3: the service-to-service job calls the Echo service")
    run(
        "Tutorial 3's job",
        [sys.executable, str(ROOT / "tutorial-3-service-to-service" / "service_to_service.py")],
        {"SERVICE_URL": f"{echo_url}/echo"},
    )

    header(4, "Tutorial 2: the job runs the tutorial's query and appends it to the results table")
    run(
        "Tutorial 2's job",
        [sys.executable, str(ROOT / "tutorial-2-job" / "main.py"), f"--query={TUTORIAL_QUERY}",
         "--result_table=results"],
        snowflake_env,
    )  # fmt: skip

    header(5, "Tutorial 2's result")
    show(cursor, "SELECT * FROM results")
    print(f"\nTables persist in {local_dir / 'snowflake'}: run the demo again for another row, or `make reset-local`.")


def main() -> int:
    parser = argparse.ArgumentParser(description="Run the SPCS tutorials' whole flow offline.")
    parser.add_argument("--local-dir", type=Path, default=Path(".local/demo"), help="where tables and logs go")
    args = parser.parse_args()
    stop_on_ctrl_c_and_sigterm()
    try:
        demo(args.local_dir)
    except KeyboardInterrupt:
        print("\nDemo stopped; everything it started is stopped too.", file=sys.stderr)
        return 130
    except (DemoFailed, RuntimeError, OSError) as error:
        print(f"\nDemo failed: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
