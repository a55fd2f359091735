"""`make bench`, local SPCS part: `make deploy CONNECTION=local` warm, Tutorial 2's job from
EXECUTE JOB SERVICE to DONE beside the same container started with a plain `docker run` (baseline), and
the service-function path into the Echo service's container with one instance beside two (how the batches
were spread over the two is read from each instance's per-batch log lines).

The baseline is the README's `docker run` line: the host's network, plain HTTP to the emulator, a password.
EXECUTE JOB SERVICE adds what the local SPCS does around it: the container's guard and firewall (egress
control), HTTPS on port 443, the token. The images are built and pushed first (not timed).
Goals: deploy <= 30 s, job <= 5 s. The job took 1.5 s before HTTPS and egress control (5 rounds, this
machine), which may add 0.3 s; the connector's platform detection, which the local SPCS no longer turns off
in its containers, is measured apart.
"""

import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import docker
import docker.errors
import snowflake.connector
import yaml

from spcs_local.emulator import client_env, connection_params
from spcs_local.processes import free_port

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = int(os.getenv("BENCH_ROUNDS", "3"))
STAGED_SPEC = "FROM @tutorial_stage SPECIFICATION_FILE='my_job_spec.yaml'"
JOB_ARGS = ["--query=select current_time() as time,'hello'", "--result_table=results"]
FUNCTION_ROWS = 100_000
FUNCTION_QUERY = (f"SELECT count(*) FROM (SELECT my_echo_udf('hello ' || seq4()) FROM "
                  f"table(generator(rowcount => {FUNCTION_ROWS})))")  # fmt: skip


def make(*targets: str, variables: list[str]) -> float:
    env = {name: value for name, value in os.environ.items() if not name.startswith("SNOWFLAKE_")}
    start = time.perf_counter()
    done = subprocess.run(["make", "-s", *targets, "CONNECTION=local", *variables], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1800)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"make {' '.join(targets)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return time.perf_counter() - start


def execute_job(
    port: int, name: str, source: str = "FROM @tutorial_stage SPECIFICATION_FILE='my_job_spec.yaml'"
) -> float:
    """EXECUTE JOB SERVICE of Tutorial 2's staged spec (or another), until it answers DONE."""
    with snowflake.connector.connect(**connection_params(client_env(port))) as connection:
        start = time.perf_counter()
        connection.cursor().execute(f"EXECUTE JOB SERVICE IN COMPUTE POOL tutorial_compute_pool NAME={name} {source}")
        seconds = time.perf_counter() - start
        connection.cursor().execute(f"DROP SERVICE {name}")
    return seconds


def docker_run_job(client: docker.DockerClient, image: str, port: int) -> float:
    """The same job container, started by hand as the README's `docker run` line does: what the job itself
    costs, without the local SPCS."""
    env = {**client_env(port), "SNOWFLAKE_WAREHOUSE": "tutorial_warehouse"}
    start = time.perf_counter()
    container = client.containers.run(image, JOB_ARGS, environment=env, network_mode="host", detach=True)
    try:
        code = container.wait()["StatusCode"]
    finally:
        container.remove(force=True)
    if code != 0:
        raise RuntimeError("the job container failed")
    return time.perf_counter() - start


def function_rows_per_second(port: int, instances: int) -> tuple[float, list[int]]:
    """my_echo_udf over FUNCTION_ROWS rows with the Echo service scaled to `instances`: rows/s (median of
    ROUNDS), and how many rows each instance received in those rounds."""
    with snowflake.connector.connect(**connection_params(client_env(port))) as connection:
        cursor = connection.cursor()
        cursor.execute(f"ALTER SERVICE echo_service SET MIN_INSTANCES = {instances} MAX_INSTANCES = {instances}")
        cursor.execute("SELECT SYSTEM$WAIT_FOR_SERVICES(300, 'echo_service')")
        cursor.execute(FUNCTION_QUERY)  # warm: each instance's connections open
        since = datetime.now(UTC).isoformat()
        rates = []
        for _ in range(ROUNDS):
            start = time.perf_counter()
            cursor.execute(FUNCTION_QUERY)
            rates.append(FUNCTION_ROWS / (time.perf_counter() - start))
        spread = []
        for index in range(instances):
            logs = cursor.execute(
                f"SELECT SYSTEM$GET_SERVICE_LOGS('echo_service', {index}, 'echo', 100000, FALSE, '{since}', FALSE)"
            ).fetchone()[0]
            spread.append(sum(int(rows) for rows in re.findall(r"Received (\d+) rows", logs)))
    return statistics.median(rates), spread


def main() -> None:
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException:
        print("\nlocal SPCS: skipped, no Docker engine is reachable (`.ci/docker-engine start` starts one)")
        return
    directory = Path(tempfile.mkdtemp(prefix="bench-local-spcs-"))
    port = free_port()
    variables = [f"LOCAL_DIR={directory}", f"EMULATOR_PORT={port}", f"REGISTRY_PORT={free_port()}"]
    try:
        make("local-up", "setup", "build", "push", "deploy", variables=variables)  # warm up: not timed
        deploys = [make("deploy", variables=variables) for _ in range(ROUNDS)]
        image = next(tag for i in client.images.list() for tag in i.tags if tag.endswith("/my_job_image:latest"))
        # The same spec with the connector's cloud platform detection off, which the job otherwise runs in the
        # local SPCS as in SPCS (the docker run line turns it off): what is left is the local SPCS's own part.
        spec = yaml.safe_load((ROOT / "tutorial-2-job" / "my_job_spec.yaml").read_text())
        spec["spec"]["containers"][0]["env"]["SNOWFLAKE_DISABLE_PLATFORM_DETECTION"] = "true"
        quiet = f"FROM SPECIFICATION $${json.dumps(spec)}$$"
        jobs, quiet_jobs, runs = [], [], []
        for n in range(ROUNDS):  # taking turns
            jobs.append(execute_job(port, f"bench_job_{n}"))
            quiet_jobs.append(execute_job(port, f"bench_quiet_job_{n}", quiet))
            runs.append(docker_run_job(client, image, port))
        one, _ = function_rows_per_second(port, 1)
        two, spread = function_rows_per_second(port, 2)
    finally:
        make("local-down", variables=variables)
        shutil.rmtree(directory, ignore_errors=True)
    deploy, job, run = statistics.median(deploys), statistics.median(jobs), statistics.median(runs)
    quiet_job = statistics.median(quiet_jobs)
    print(f"\nLocal SPCS, {ROUNDS} rounds, medians")
    print(f"  make deploy CONNECTION=local (warm)        {deploy:6.1f} s   (goal <= 30 s)")
    print(f"  EXECUTE JOB SERVICE (Tutorial 2) to DONE   {job:6.1f} s   (goal <= 5 s)")
    print(f"    of which the connector's platform detection {job - quiet_job:4.1f} s   (SPCS runs it too)")
    print(f"  the same container with docker run         {run:6.1f} s   (baseline)")
    print(f"  EXECUTE JOB SERVICE / docker run           {job / run:6.2f}x")
    print(f"  my_echo_udf, {FUNCTION_ROWS:,} rows, one Echo instance  {one:9,.0f} rows/s   (baseline)")
    print(f"  the same, two Echo instances              {two:9,.0f} rows/s   {two / one:5.2f}x")
    shares = ", ".join(f"instance {i}: {rows / max(sum(spread), 1):.0%}" for i, rows in enumerate(spread))
    print(f"    rows each instance received: {shares}")


if __name__ == "__main__":
    main()
