"""`make demo`: the tutorials' whole flow, offline, in one command.

It starts the embedded Snowflake emulator and the Echo service on free loopback ports, then runs
Tutorial 1's service-function call, Tutorial 3's job and Tutorial 2's job as processes, and shows
the `results` table. Everything it starts is stopped on success, failure, Ctrl-C or SIGTERM.
"""

import argparse
import contextlib
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import snowflake.connector
import snowflake.connector.errors

from spcs_local.emulator import client_env, connection_params
from spcs_local.processes import free_port, stop, stop_on_sigterm, wait_for_http

ROOT = Path(__file__).resolve().parent.parent
STEPS = 5
TUTORIAL_QUERY = "select current_time() as time,'hello'"


class DemoFailed(Exception):
    """A step failed; the message says which and why."""


def header(step: int, text: str) -> None:
    print(f"\n=== Step {step}/{STEPS}: {text}", flush=True)


def start(stack: contextlib.ExitStack, name: str, args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start a server in the background, logging to `log`; the stack stops it by PID."""
    with log.open("w") as out:
        process = subprocess.Popen(args, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
    stack.callback(stop, process)
    print(f"started the {name} (pid {process.pid}), log in {log}", flush=True)
    return process


def run(name: str, args: list[str], env: dict[str, str]) -> None:
    """Run one tutorial's job in the foreground, its log shown as it comes."""
    job = subprocess.run(args, env={**os.environ, **env}, check=False)
    if job.returncode != 0:
        raise DemoFailed(f"{name} exited with code {job.returncode}")


def call_like_my_echo_udf(echo_url: str, messages: list[str]) -> None:
    """POST a batch as Snowflake does for `SELECT my_echo_udf(message_text) FROM messages`."""
    body = json.dumps({"data": [[i, text] for i, text in enumerate(messages)]}).encode()
    request = urllib.request.Request(f"{echo_url}/echo", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        rows = json.load(reply)["data"]
    print_table(
        ["MESSAGE_TEXT", "MY_ECHO_UDF(MESSAGE_TEXT)"],
        [[text, echoed] for text, (_, echoed) in zip(messages, rows, strict=True)],
    )


def print_results(env: dict[str, str]) -> None:
    with snowflake.connector.connect(**connection_params(env)) as connection:
        cursor = connection.cursor().execute("SELECT * FROM results")
        print_table([column.name for column in cursor.description], cursor.fetchall())


def print_table(columns: list[str], rows: list) -> None:
    """Rows as Snowsight's result grid shows them: a column per field, a line per row."""
    cells = [columns, *([str(value) for value in row] for row in rows)]
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

    with contextlib.ExitStack() as stack:
        header(1, "start the embedded Snowflake emulator and the Echo service (Tutorial 1) as Bob")
        emulator = start(
            stack,
            f"Snowflake emulator on 127.0.0.1:{snowflake_port}",
            [
                python,
                "-m",
                "spcs_local.emulator",
                "--port",
                str(snowflake_port),
                "--data-dir",
                str(local_dir / "snowflake"),
            ],
            {},
            logs / "snowflake.log",
        )
        echo = start(
            stack,
            f"Echo service on {echo_url}",
            [python, str(ROOT / "echo-service" / "echo_service.py")],
            {"SERVER_HOST": "127.0.0.1", "SERVER_PORT": str(echo_port), "CHARACTER_NAME": "Bob", "SERVER_WORKERS": "1"},
            logs / "echo-service.log",
        )
        wait_for_http(f"{echo_url}/healthcheck", echo)
        wait_for_http(f"http://127.0.0.1:{snowflake_port}/healthcheck", emulator)
        print("both are ready", flush=True)

        header(2, "Tutorial 1: SELECT my_echo_udf(message_text) FROM messages, as a service-function call")
        call_like_my_echo_udf(echo_url, ["Thank you", "Hello", "Hello World"])

        header(3, "Tutorial 3: the service-to-service job calls the Echo service")
        run(
            "Tutorial 3's job",
            [python, str(ROOT / "tutorial-3-service-to-service" / "service_to_service.py")],
            {"SERVICE_URL": f"{echo_url}/echo"},
        )

        header(4, "Tutorial 2: the job runs the tutorial's query and appends it to the results table")
        run(
            "Tutorial 2's job",
            [python, str(ROOT / "tutorial-2-job" / "main.py"), f"--query={TUTORIAL_QUERY}", "--result_table=results"],
            snowflake_env,
        )

        header(5, "SELECT * FROM results")
        print_results(snowflake_env)
        print(
            f"\nTables persist in {local_dir / 'snowflake'}: run the demo again for another row, or `make reset-local`."
        )


def main() -> int:
    parser = argparse.ArgumentParser(description="Run the SPCS tutorials' whole flow offline.")
    parser.add_argument("--local-dir", type=Path, default=Path(".local"), help="where tables and logs go")
    args = parser.parse_args()
    stop_on_sigterm()
    try:
        demo(args.local_dir)
    except (DemoFailed, RuntimeError, OSError, snowflake.connector.errors.Error) as error:
        print(f"\nDemo failed: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nDemo stopped; everything it started is stopped too.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
