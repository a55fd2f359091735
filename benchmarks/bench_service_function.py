"""`make bench`, service-function part: Snowflake's side of the contract, as the emulator plays it.

`SELECT count(*) FROM (SELECT my_echo_udf(...) FROM table(generator(rowcount => 200000)))` runs through
the emulator, whose service function sends the rows to the Echo service in batches of 100 rows; wrk
sends the same Echo service the same 100-row batch, in one run, taking turns. The Echo service has one
worker on CPU 0; the emulator and wrk run on CPU 1. Goal: the emulator's rows/s >= 25% of wrk's.
"""

import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import snowflake.connector

from benchmarks.bench_echo import LOAD_CPU, ROOT, ROUNDS, start_server, wrk, wrk_script
from spcs_local.emulator import client_env, connection_params
from spcs_local.processes import free_port, running

ROWS, BATCH_ROWS = 200_000, 100
QUERY = f"SELECT count(*) FROM (SELECT my_echo_udf('hello ' || seq4()) FROM table(generator(rowcount => {ROWS})))"


def main() -> None:
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        echo_service = [sys.executable, str(ROOT / "echo-service" / "echo_service.py")]
        echo = f"http://127.0.0.1:{start_server(stack, echo_service, '/healthcheck')}"
        port = free_port()
        emulator = [*LOAD_CPU, sys.executable, "-m", "spcs_local.emulator", "--port", str(port), "--data-dir",
                    str(Path(tmp, "snowflake")), "--external-service", f"echo_service:echoendpoint={echo}"]  # fmt: skip
        stack.enter_context(running(emulator, f"http://127.0.0.1:{port}/healthcheck", cwd=ROOT,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))  # fmt: skip
        env = client_env(port)
        cursor = stack.enter_context(snowflake.connector.connect(**connection_params(env))).cursor()
        cursor.execute(f"CREATE FUNCTION my_echo_udf (InputText varchar) RETURNS varchar SERVICE=echo_service "
                       f"ENDPOINT=echoendpoint MAX_BATCH_ROWS = {BATCH_ROWS} AS '/echo'")  # fmt: skip
        assert cursor.execute("SELECT my_echo_udf('hello')").fetchall() == [("Bob said hello",)]
        script = wrk_script(tmp, BATCH_ROWS)
        emulated, loaded = [], []
        for _ in range(ROUNDS):  # taking turns
            start = time.perf_counter()
            assert cursor.execute(QUERY).fetchall() == [(ROWS,)]
            emulated.append(ROWS / (time.perf_counter() - start))
            loaded.append(wrk(f"{echo}/echo", script)["rps"] * BATCH_ROWS)
    ours, theirs = statistics.median(emulated), statistics.median(loaded)
    print(f"\nService function through the emulator, {BATCH_ROWS}-row batches, {ROUNDS} rounds, medians")
    print(f"  SELECT count(*) over my_echo_udf, {ROWS:,} rows   {ours:>10,.0f} rows/s")
    print(f"  wrk on the same Echo service                 {theirs:>10,.0f} rows/s")
    print(f"  emulator / wrk                               {ours / theirs:>10.0%}   (goal >= 25%)")


if __name__ == "__main__":
    main()
