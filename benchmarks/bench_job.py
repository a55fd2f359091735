"""`make bench`, Tutorial 2 part: the job's append against a direct INSERT ... SELECT, and its cold run.

Both appends run on the same emulator in one process, taking turns: the job's Snowpark statement
(`session.sql(q).write.mode("append").save_as_table(t)`) and the same rows sent through the connector
as one INSERT ... SELECT. A ratio near 1 means no rows pass through the client.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import snowflake.connector
from snowflake.snowpark import Session

from spcs_local.emulator import client_env, connection_params
from spcs_local.processes import free_port, running

ROOT = Path(__file__).resolve().parent.parent
ROWS = 1_000_000
ROUNDS = int(os.getenv("BENCH_ROUNDS", "3"))
QUERY = f"select seq4() as n, 'hello' as greeting from table(generator(rowcount => {ROWS}))"


def timed(action: object) -> float:
    start = time.perf_counter()
    action()  # type: ignore[operator]
    return time.perf_counter() - start


def pushdown(env: dict[str, str]) -> tuple[float, float]:
    params = connection_params(env)
    with Session.builder.configs(params).create() as session, snowflake.connector.connect(**params) as connection:
        cursor = connection.cursor()
        cursor.execute("create or replace table appended_by_job (n number, greeting varchar)")
        cursor.execute("create or replace table appended_directly (n number, greeting varchar)")
        job, direct = [], []
        for _ in range(ROUNDS):
            job.append(timed(lambda: session.sql(QUERY).write.mode("append").save_as_table("appended_by_job")))
            direct.append(timed(lambda: cursor.execute(f"insert into appended_directly {QUERY}")))
        counts = [
            cursor.execute(f"select count(*) from {t}").fetchone()[0] for t in ("appended_by_job", "appended_directly")
        ]  # type: ignore[index]
        assert counts == [ROWS * ROUNDS] * 2, counts
    return statistics.median(job), statistics.median(direct)


def cold_run(env: dict[str, str]) -> tuple[float, float]:
    """Median wall time (s) and peak RSS (MiB) of `python3 main.py` with the tutorial's arguments."""
    times, peaks = [], []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        job = subprocess.Popen(
            [sys.executable, str(ROOT / "tutorial-2-job" / "main.py"), "--query=select current_time() as time,'hello'",
             "--result_table=results"],
            env={**os.environ, **env}, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        _, status, usage = os.wait4(job.pid, 0)
        job.returncode = os.waitstatus_to_exitcode(status)
        assert job.returncode == 0, "the job failed"
        times.append(time.perf_counter() - start)
        peaks.append(usage.ru_maxrss / 1024)
    return statistics.median(times), statistics.median(peaks)


def main() -> None:
    port = free_port()
    with tempfile.TemporaryDirectory() as data_dir:
        emulator = [sys.executable, "-m", "spcs_local.emulator", "--port", str(port), "--data-dir", data_dir]
        with running(
            emulator,
            f"http://127.0.0.1:{port}/healthcheck",
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=ROOT,
        ):
            env = client_env(port)
            job, direct = pushdown(env)
            seconds, mib = cold_run(env)
    print(f"\nTutorial 2 job on the emulator, {ROUNDS} rounds, medians")
    print(f"{'append ' + format(ROWS, ',') + ' rows':<28} {'seconds':>8}")
    print(f"{'  job (Snowpark save_as_table)':<28} {job:>8.2f}")
    print(f"{'  direct INSERT ... SELECT':<28} {direct:>8.2f}")
    print(f"{'  job / direct':<28} {job / direct:>7.2f}x   (goal <= 1.3x)")
    print(f"cold run of the job: {seconds:.2f} s (goal <= 3 s), peak memory {mib:.0f} MiB")


if __name__ == "__main__":
    main()
