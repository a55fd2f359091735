"""Clients as they are today: the apps' pinned connector (4.x) and the newest line (5.x, which an unpinned
requirements.txt installs) log in to the emulator and query it, with a password and with an OAuth token.
`make test` makes the 5.x environment (.connector5-venv)."""

import json
import os
import subprocess
import sys

import pytest
import snowflake.connector

from spcs_local.emulator import connection_params

from .conftest import ROOT, without_snowflake_env

CLIENTS = {"4.x (the apps' pin)": sys.executable, "5.x": str(ROOT / ".connector5-venv" / "bin" / "python")}
CLIENT = """
import json, os, sys
import snowflake.connector
params = json.loads(sys.argv[1])
with snowflake.connector.connect(**params) as connection:
    cursor = connection.cursor()
    print(snowflake.connector.__version__.split(".")[0])
    print(cursor.execute("select current_account(), current_user(), current_database(), current_schema()").fetchone())
    cursor.execute("create or replace table client_rows (n int)")
    cursor.execute("insert into client_rows values (1), (2)")
    print(cursor.execute("select count(*) from client_rows").fetchone()[0])
    print(len(cursor.execute("show compute pools").fetchall()))
"""


def run_client(
    python: str, params: dict, env: dict[str, str] | None = None, script: str = CLIENT
) -> subprocess.CompletedProcess:
    if not os.path.exists(python):
        if os.getenv("CI"):
            pytest.fail(f"{python} is missing: `make test` makes it")
        pytest.skip(f"{python} is missing: `make test` makes it")
    return subprocess.run([python, "-c", script, json.dumps(params)], env={**without_snowflake_env(), **(env or {})},
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def client_lines(python: str, params: dict, env: dict[str, str] | None = None, script: str = CLIENT) -> list[str]:
    done = run_client(python, params, env, script)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.splitlines()


@pytest.mark.parametrize("client", CLIENTS)
def test_a_password_login_and_queries(emulator_env: dict[str, str], client: str) -> None:
    major, context, count, pools = client_lines(CLIENTS[client], connection_params(emulator_env))

    assert major == client[0]
    assert context == "('TUTORIAL', 'TUTORIAL_USER', 'TUTORIAL_DB', 'DATA_SCHEMA')"
    assert (count, pools) == ("2", "0")


@pytest.mark.parametrize("client", CLIENTS)
def test_an_oauth_login_with_only_host_account_and_token(emulator_env: dict[str, str], client: str) -> None:
    with snowflake.connector.connect(**connection_params(emulator_env)) as login:  # a live session's token
        params = {name: emulator_env[f"SNOWFLAKE_{name.upper()}"] for name in ("account", "host", "port", "protocol")}
        params |= {"authenticator": "oauth", "token": login.rest.token, "database": "TUTORIAL_DB",
                   "schema": "DATA_SCHEMA"}  # fmt: skip

        major, context, _, _ = client_lines(CLIENTS[client], params)

    assert major == client[0] and "'TUTORIAL'" in context
