"""Tutorial 2's job, run as a process against the embedded Snowflake emulator."""

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from spcs_local.emulator import client_env
from spcs_local.processes import free_port

from .conftest import ROOT, snowpark_session, start_emulator, without_snowflake_env

JOB = ROOT / "tutorial-2-job" / "main.py"
TUTORIAL_QUERY = "select current_time() as time,'hello'"
# A query that runs for minutes on the emulator: long enough to stop the job in the middle of it.
SLOW_QUERY = (
    "select count(*) as n from (select seq4() as x from table(generator(rowcount => 300000))) a, "
    "(select seq4() as y from table(generator(rowcount => 300000))) b where a.x + b.y = -1"
)


def run_job(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """`python3 main.py --query=... --result_table=...` with only the given SNOWFLAKE_* env vars."""
    return subprocess.run(
        [sys.executable, str(JOB), *args],
        env={**without_snowflake_env(), **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def table_rows(env: dict[str, str], table: str) -> list[tuple]:
    with snowpark_session(env) as session:
        return [tuple(row) for row in session.table(table).collect()]


def row_count(env: dict[str, str], table: str) -> int:
    with snowpark_session(env) as session:
        return session.table(table).count()


def job_running(env: dict[str, str], query: str, table: str) -> subprocess.Popen:
    """The job, started in the background, once it logs that it is executing its query."""
    job = subprocess.Popen(
        [sys.executable, str(JOB), f"--query={query}", f"--result_table={table}"],
        env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    for line in job.stdout:  # type: ignore[union-attr]
        if "Executing query" in line:
            break
    return job


def new_table() -> str:
    return f"results_{uuid.uuid4().hex[:8]}"


def test_the_tutorials_command_twice_appends_two_rows(emulator_env: dict[str, str]) -> None:
    table = new_table()
    for _ in range(2):
        job = run_job(emulator_env, f"--query={TUTORIAL_QUERY}", f"--result_table={table}")
        assert job.returncode == 0, job.stdout + job.stderr

    assert job.stdout.splitlines() == [
        "job-tutorial - INFO - Job started",
        'job-tutorial - INFO - Connection succeeded. Current session context: database="TUTORIAL_DB", '
        'schema="DATA_SCHEMA", warehouse="TUTORIAL_WAREHOUSE", role="TEST_ROLE"',
        f"job-tutorial - INFO - Executing query [{TUTORIAL_QUERY}] and writing result to table [{table}]",
        "job-tutorial - INFO - Job finished",
    ]
    rows = table_rows(emulator_env, table)
    assert len(rows) == 2
    assert [greeting for _, greeting in rows] == ["hello", "hello"]


@pytest.mark.parametrize("name", ["TUTORIAL_DB.DATA_SCHEMA.{t}", "DATA_SCHEMA.{t}", '"Mixed Case {t}"'])
def test_qualified_and_quoted_table_names_work(emulator_env: dict[str, str], name: str) -> None:
    table = name.format(t=new_table())

    job = run_job(emulator_env, "--query=select 1 as n", f"--result_table={table}")

    assert job.returncode == 0, job.stdout + job.stderr
    assert table_rows(emulator_env, table) == [(1,)]


@pytest.fixture
def existing_table(emulator_env: dict[str, str]) -> str:
    """A results table that already holds one row, to show that failures leave it as it was."""
    table = new_table()
    assert run_job(emulator_env, f"--query={TUTORIAL_QUERY}", f"--result_table={table}").returncode == 0
    return table


@pytest.mark.parametrize(
    ("args", "env_change", "problem"),
    [
        (["--query=select nosuchcolumn from nowhere"], {}, "NOWHERE"),
        (["--query=select 1 as n, 2 as m"], {}, "Job failed"),  # wrong shape for the existing table
        (["--result_table=no_such_schema.{table}"], {}, "NO_SUCH_SCHEMA"),
        (["--result_table=results; drop table x"], {}, "is not a valid Snowflake table name"),
        ([], {"SNOWFLAKE_PASSWORD": "not-the-password"}, "Incorrect username or password"),
        ([], {"SNOWFLAKE_ACCOUNT": ""}, "no Snowflake connection configured"),
        ([], {"SNOWFLAKE_LOGIN_TIMEOUT": "soon"}, "SNOWFLAKE_LOGIN_TIMEOUT must be a whole number of seconds"),
        (["--query="], {}, "--query is empty"),
        (["--query=  \n "], {}, "--query is empty"),
        ([], {"SNOWFLAKE_PORT": "abc"}, "SNOWFLAKE_PORT must be a port number, got 'abc'"),
        ([], {"SNOWFLAKE_PORT": "99999"}, "SNOWFLAKE_PORT must be a port number, got '99999'"),
        (
            [],
            {"SNOWFLAKE_PRIVATE_KEY_FILE": "/no/such/rsa_key.p8"},
            "SNOWFLAKE_PRIVATE_KEY_FILE '/no/such/rsa_key.p8' cannot be read: No such file or directory",
        ),
        ([], {"SNOWFLAKE_PRIVATE_KEY_FILE": "/etc/hostname"}, "Job failed"),  # not a key
    ],
    ids=[
        "sql-error",
        "schema-mismatch",
        "unknown-schema",
        "bad-table-name",
        "wrong-password",
        "no-connection",
        "bad-timeout",
        "empty-query",
        "blank-query",
        "port-not-a-number",
        "port-out-of-range",
        "missing-key-file",
        "not-a-key",
    ],
)
def test_failures_exit_1_with_one_error_line_and_leave_the_table_as_it_was(
    emulator_env: dict[str, str], existing_table: str, args: list[str], env_change: dict[str, str], problem: str
) -> None:
    defaults = {"--query": TUTORIAL_QUERY, "--result_table": existing_table}
    for arg in args:
        name, value = arg.split("=", 1)
        defaults[name] = value.format(table=existing_table)
    env = {name: value for name, value in {**emulator_env, **env_change}.items() if value}
    before = table_rows(emulator_env, existing_table)

    job = run_job(env, *(f"{name}={value}" for name, value in defaults.items()))

    assert job.returncode == 1
    errors = [line for line in job.stdout.splitlines() if " - ERROR - " in line]
    assert len(errors) == 1 and problem in errors[0], job.stdout + job.stderr
    assert "Traceback" not in job.stdout + job.stderr
    assert "not-the-password" not in job.stdout + job.stderr
    assert table_rows(emulator_env, existing_table) == before


def test_an_unreachable_backend_fails_within_the_login_timeout() -> None:
    env = {**client_env(free_port()), "SNOWFLAKE_LOGIN_TIMEOUT": "5"}

    job = run_job(env, f"--query={TUTORIAL_QUERY}", "--result_table=results", timeout=40)

    assert job.returncode == 1
    assert "Job failed" in job.stdout


NETWORK_TIMEOUT = 2


def test_a_backend_that_vanishes_mid_query_fails_the_job_in_one_line_within_the_network_timeout(tmp_path) -> None:
    # The connector retries the query for the network timeout; the job then leaves without retrying its cancel
    # and its close for as long again.
    port = free_port()
    env = {**client_env(port), "SNOWFLAKE_NETWORK_TIMEOUT": str(NETWORK_TIMEOUT)}
    with start_emulator(port, tmp_path) as emulator:
        job = job_running(env, SLOW_QUERY, "results")
        emulator.send_signal(signal.SIGKILL)
    try:
        # The README's bound: the timeout, the connector's last backoff (at most 16 s) and 6 s of cleanup.
        rest, errors = job.communicate(timeout=NETWORK_TIMEOUT + 16 + 6 + 4)
    finally:
        job.kill()

    assert job.returncode == 1
    assert rest.startswith("job-tutorial - ERROR - Job failed: ")
    assert len(rest.splitlines()) == 1 and errors == "", rest + errors


def test_a_query_that_fails_into_a_new_table_leaves_no_table(emulator_env: dict[str, str]) -> None:
    table = new_table()
    # Row 5 can't be cast: the query fails while it runs, after the table was created for it.
    query = (
        "select seq4() as n, (case when seq4() = 5 then 'x' else '1' end)::int as m "
        "from table(generator(rowcount => 10))"
    )

    job = run_job(emulator_env, f"--query={query}", f"--result_table={table}")

    assert job.returncode == 1, job.stdout
    with snowpark_session(emulator_env) as session:
        assert session.sql(f"show tables like '{table}'").collect() == []


def test_a_token_file_that_cant_be_read_is_one_line(emulator_env: dict[str, str], tmp_path) -> None:
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import main; main.TOKEN_PATH = sys.argv[2]; "
        "sys.argv = ['main.py'] + sys.argv[3:]; sys.exit(main.main())"
    )
    args = [str(JOB.parent), str(tmp_path), f"--query={TUTORIAL_QUERY}", "--result_table=results"]  # a directory

    job = subprocess.run([sys.executable, "-c", code, *args], env={**without_snowflake_env(), **emulator_env},
                         capture_output=True, text=True, timeout=60)  # fmt: skip

    assert job.returncode == 1
    assert (
        job.stdout.splitlines()[-1]
        == f"job-tutorial - ERROR - Job failed: the login token {str(tmp_path)!r} cannot be read: Is a directory"
    )
    assert job.stderr == ""


def test_sigterm_ends_the_job_cleanly(tmp_path) -> None:
    port = free_port()
    with start_emulator(port, tmp_path):
        job = job_running(client_env(port), SLOW_QUERY, "results")
        job.send_signal(signal.SIGTERM)
        rest = job.communicate(timeout=30)[0]

    assert job.returncode == 143
    assert "Job stopped: SIGTERM received" in rest


def start_big_insert(env: dict[str, str], rows: int) -> subprocess.Popen:
    """The job appending `rows` rows to `numbers` (one row, 0, before), once it is under way. The emulator
    inserts about 10 million rows a second."""
    assert run_job(env, "--query=select 0 as n", "--result_table=numbers").returncode == 0
    job = job_running(env, f"select seq8() as n from table(generator(rowcount => {rows}))", "numbers")
    time.sleep(0.5)  # the INSERT runs
    return job


def test_a_job_stopped_mid_insert_commits_none_of_it(tmp_path) -> None:
    port = free_port()
    with start_emulator(port, tmp_path):
        job = start_big_insert(client_env(port), 40_000_000)
        job.send_signal(signal.SIGTERM)
        job.communicate(timeout=30)
        time.sleep(5)  # past the time the whole INSERT takes

        assert row_count(client_env(port), "numbers") == 1


def test_a_backend_stopped_mid_insert_commits_none_of_it(tmp_path) -> None:
    port = free_port()
    with start_emulator(port, tmp_path) as emulator:
        job = start_big_insert(client_env(port), 20_000_000)  # it would end within the server's 2 s to drain
        emulator.send_signal(signal.SIGTERM)
        emulator.wait(timeout=30)
    job.kill()
    with start_emulator(port, tmp_path):  # the same data, after a restart
        assert row_count(client_env(port), "numbers") == 1


def test_a_named_connection_from_connections_toml_is_loaded_by_the_connector(
    emulator_env: dict[str, str], tmp_path
) -> None:
    toml = tmp_path / "connections.toml"
    toml.write_text(
        "[local]\n"
        + "".join(f'{name.removeprefix("SNOWFLAKE_").lower()} = "{value}"\n' for name, value in emulator_env.items())
    )
    toml.chmod(0o600)
    table = new_table()

    job = run_job(
        {"SNOWFLAKE_HOME": str(tmp_path), "SNOWFLAKE_CONNECTION_NAME": "local"},
        f"--query={TUTORIAL_QUERY}", f"--result_table={table}",
    )  # fmt: skip

    assert job.returncode == 0, job.stdout + job.stderr
    assert len(table_rows(emulator_env, table)) == 1


def test_a_private_key_file_selects_key_pair_authentication(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    sys.path.insert(0, str(JOB.parent))
    try:
        import main
    finally:
        sys.path.remove(str(JOB.parent))
    for name in [name for name in os.environ if name.startswith("SNOWFLAKE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("SNOWFLAKE_ACCOUNT", "myorg-myaccount")
    monkeypatch.setenv("SNOWFLAKE_USER", "tutorial_user")
    key_file = tmp_path / "rsa_key.p8"
    key_file.write_text("-----BEGIN PRIVATE KEY-----\n")
    monkeypatch.setenv("SNOWFLAKE_PRIVATE_KEY_FILE", str(key_file))

    params = main.get_connection_params()

    assert params["authenticator"] == "SNOWFLAKE_JWT"
    assert params["private_key_file"] == str(key_file)
    assert "password" not in params
