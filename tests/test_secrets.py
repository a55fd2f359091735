"""Secrets, as "Passing credentials to a container using Snowflake secrets" describes them: CREATE, ALTER, SHOW,
DESCRIBE and DROP SECRET, and a spec's `containers[].secrets` as environment variables and as files. A value is
kept only in the secrets' own file (0600), and shown nowhere."""

import json
from pathlib import Path

import pytest

from .fakes import LocalSPCS
from .test_local_spcs_statements import error_of

PASSWORD = "s3cr3t-Pa55"
SPEC = """spec:
  containers:
  - name: main
    image: /tutorial_db/data_schema/tutorial_repository/my_job_image:latest
    secrets:
    - snowflakeSecret:
        objectName: tutorial_db.data_schema.db_login
      secretKeyRef: password
      envVarName: DB_PASSWORD
    - snowflakeSecret: db_login
      secretKeyRef: username
      envVarName: DB_USER
    - snowflakeSecret:
        objectName: api_key
      directoryPath: /run/secrets/api
"""


@pytest.fixture
def spcs(tmp_path: Path) -> LocalSPCS:
    spcs = LocalSPCS(tmp_path / "spcs")
    spcs.with_pool_and_images("my_job_image")
    spcs.sql(f"CREATE SECRET db_login TYPE = PASSWORD USERNAME = 'app_user' PASSWORD = '{PASSWORD}'")
    spcs.sql("CREATE SECRET api_key TYPE = GENERIC_STRING SECRET_STRING = 'key-123' COMMENT = 'for the API'")
    return spcs


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE SECRET s TYPE = PASSWORD USERNAME = 'u' PASSWORD = 'p'",
        "CREATE OR REPLACE SECRET s TYPE = GENERIC_STRING SECRET_STRING = 'x'",
        "CREATE SECRET IF NOT EXISTS s TYPE = OAUTH2 API_AUTHENTICATION = my_integration OAUTH_SCOPES = ('a', 'b')",
        "CREATE SECRET s TYPE = OAUTH2 API_AUTHENTICATION = i OAUTH_REFRESH_TOKEN = 't' "
        "OAUTH_REFRESH_TOKEN_EXPIRY_TIME = '2027-01-01'",
        "CREATE SECRET s TYPE = CLOUD_PROVIDER_TOKEN API_AUTHENTICATION = aws_integration",
        "CREATE SECRET s TYPE = SYMMETRIC_KEY ALGORITHM = GENERIC",
    ],
)
def test_every_documented_type_is_created(spcs: LocalSPCS, sql: str) -> None:
    assert spcs.value(sql).endswith("successfully created.")
    assert [row["name"] for row in spcs.rows("SHOW SECRETS LIKE 'S'")] == ["S"]


def test_show_and_describe_never_show_a_value(spcs: LocalSPCS) -> None:
    shown = spcs.rows("SHOW SECRETS IN SCHEMA tutorial_db.data_schema")
    described = spcs.rows("DESCRIBE SECRET db_login")

    assert [(row["name"], row["secret_type"]) for row in shown] == [("API_KEY", "GENERIC_STRING"),
                                                                     ("DB_LOGIN", "PASSWORD")]  # fmt: skip
    assert described[0]["username"] == "app_user"
    assert PASSWORD not in json.dumps([shown, described], default=str) and "key-123" not in str(shown)


def test_values_are_kept_only_in_the_secrets_file_which_only_its_owner_reads(spcs: LocalSPCS) -> None:
    store = spcs.path / "secrets.json"

    assert store.stat().st_mode & 0o777 == 0o600 and store.parent.stat().st_mode & 0o777 == 0o700
    assert PASSWORD in store.read_text() and PASSWORD not in (spcs.path / "catalog.json").read_text()
    again = spcs.restarted()
    assert [row["name"] for row in again.rows("SHOW SECRETS")] == ["API_KEY", "DB_LOGIN"]


def test_create_alter_and_drop_keep_snowflakes_rules(spcs: LocalSPCS) -> None:
    assert (
        "already exists" in error_of(spcs, "CREATE SECRET db_login TYPE = GENERIC_STRING SECRET_STRING = 'x'").message
    )
    assert spcs.value("CREATE SECRET IF NOT EXISTS db_login TYPE = GENERIC_STRING SECRET_STRING = 'x'").endswith(
        "already exists, statement succeeded."
    )
    assert (
        "invalid property 'SECRET_STRING'"
        in error_of(spcs, "CREATE SECRET other TYPE = PASSWORD SECRET_STRING = 'x'").message
    )
    assert "TYPE must be one of" in error_of(spcs, "CREATE SECRET other TYPE = KEYCHAIN").message
    spcs.sql("ALTER SECRET db_login SET PASSWORD = 'rotated' COMMENT = 'rotated today'")
    assert spcs.rows("DESCRIBE SECRET db_login")[0]["comment"] == "rotated today"

    assert spcs.value("DROP SECRET db_login") == "DB_LOGIN successfully dropped."
    assert spcs.value("DROP SECRET IF EXISTS db_login").endswith("(DB_LOGIN already dropped).")
    assert "Secret 'DB_LOGIN' does not exist or not authorized." in error_of(spcs, "DESCRIBE SECRET db_login").message


def test_a_spec_gets_secrets_as_environment_variables_and_as_files(spcs: LocalSPCS) -> None:
    spcs.sql(f"EXECUTE JOB SERVICE IN COMPUTE POOL tutorial_compute_pool NAME = with_secrets "
             f"FROM SPECIFICATION $${SPEC}$$")  # fmt: skip

    [workload] = spcs.backend.started
    [main] = workload.containers
    assert (main.env["DB_PASSWORD"], main.env["DB_USER"]) == (PASSWORD, "app_user")
    assert main.files["/run/secrets/api/secret_string"].text == "key-123"
    assert main.files["/run/secrets/api/secret_string"].mode == 0o444  # read-only
    assert PASSWORD not in json.dumps(spcs.rows("DESCRIBE SERVICE with_secrets"), default=str)
    assert PASSWORD not in repr(workload)


@pytest.mark.parametrize(
    "statement",
    ["CREATE SERVICE s IN COMPUTE POOL tutorial_compute_pool",
     "EXECUTE JOB SERVICE IN COMPUTE POOL tutorial_compute_pool NAME = s"],
)  # fmt: skip
def test_a_secret_that_does_not_exist_fails_create_and_execute(spcs: LocalSPCS, statement: str) -> None:
    spcs.sql("DROP SECRET api_key")

    failure = error_of(spcs, f"{statement} FROM SPECIFICATION $${SPEC}$$")

    assert failure.message == "SQL compilation error:\nSecret 'API_KEY' does not exist or not authorized."


def test_a_key_the_secret_has_not_is_an_error_naming_its_keys(spcs: LocalSPCS) -> None:
    spec = SPEC.replace("secretKeyRef: username", "secretKeyRef: secret_string")

    failure = error_of(spcs, f"CREATE SERVICE s IN COMPUTE POOL tutorial_compute_pool FROM SPECIFICATION $${spec}$$")

    assert "secret DB_LOGIN of TYPE = PASSWORD has no key 'secret_string': its keys are username, password" in (
        failure.message
    )
