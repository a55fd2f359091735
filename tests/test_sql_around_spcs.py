"""The SQL around SPCS that setup and teardown scripts send, as Snowflake answers it: databases with their PUBLIC
schema, what becomes current, drops that free what they held, variables in IDENTIFIER(), users as no-ops and the
context functions. Through the real connector, against the emulator's front."""

from collections.abc import Iterator

import pytest
import snowflake.connector
import snowflake.connector.errors

from spcs_local.emulator import client_env, connection_params, fakesnow_fixes

from .fakes import LocalSPCS, serving


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, LocalSPCS]]:
    directory = tmp_path_factory.mktemp("sql-around-spcs")
    spcs = LocalSPCS(directory / "spcs")
    spcs.stages = fakesnow_fixes.Storage()  # databases, schemas and stages as fakesnow keeps them
    with serving(spcs, directory / "snowflake") as url:
        yield url, spcs


@pytest.fixture
def cursor(base: tuple[str, LocalSPCS]) -> Iterator[snowflake.connector.cursor.SnowflakeCursor]:
    port = int(base[0].rsplit(":", 1)[1])
    with snowflake.connector.connect(**connection_params(client_env(port))) as connection:
        yield connection.cursor()


def one(cursor: snowflake.connector.cursor.SnowflakeCursor, sql: str) -> tuple:
    return cursor.execute(sql).fetchone()


def test_a_new_database_has_public_and_becomes_current_as_the_clis_fixture_expects(cursor) -> None:
    cursor.execute("create database fixture_db")
    assert one(cursor, "select current_database(), current_schema()") == ("FIXTURE_DB", "PUBLIC")

    cursor.execute("use schema public")  # the Snowflake CLI's own integration tests do this next
    cursor.execute("create schema staging")
    assert one(cursor, "select current_database(), current_schema()") == ("FIXTURE_DB", "STAGING")
    cursor.execute("use database tutorial_db")
    assert one(cursor, "select current_database(), current_schema()") == ("TUTORIAL_DB", "PUBLIC")
    cursor.execute("use schema fixture_db.public")
    schemas = {row[1].upper() for row in cursor.execute("show schemas in database fixture_db").fetchall()}
    assert {"PUBLIC", "STAGING", "INFORMATION_SCHEMA"} <= schemas
    cursor.execute("drop database fixture_db")


def test_drop_stage_drops_it_with_its_files(cursor, tmp_path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("spec: {}\n")
    cursor.execute("create or replace stage tutorial_stage")
    cursor.execute(f"put file://{spec} @tutorial_stage auto_compress=false")

    assert one(cursor, "drop stage if exists tutorial_stage") == ("TUTORIAL_STAGE successfully dropped.",)
    assert one(cursor, "drop stage if exists tutorial_stage") == (
        "Drop statement executed successfully (TUTORIAL_STAGE already dropped).",
    )
    with pytest.raises(snowflake.connector.errors.ProgrammingError, match="Stage 'TUTORIAL_STAGE' does not exist"):
        cursor.execute("drop stage tutorial_stage")
    cursor.execute("create stage tutorial_stage")
    assert cursor.execute("list @tutorial_stage").fetchall() == []  # a new stage, empty


@pytest.mark.parametrize("kind", ["schema", "database"])
def test_drop_schema_and_database_drop_what_they_hold_the_local_spcs_objects_too(
    base: tuple[str, LocalSPCS], cursor, kind: str
) -> None:
    _, spcs = base
    cursor.execute("create database sample_db")
    cursor.execute("create schema sample_db.apps")
    cursor.execute("create table sample_db.apps.t (n int)")
    cursor.execute("create stage sample_db.apps.specs")
    cursor.execute("create image repository sample_db.apps.images")
    assert "SAMPLE_DB.APPS.IMAGES" in spcs.catalog.repositories

    dropped = "sample_db.apps" if kind == "schema" else "sample_db"
    assert one(cursor, f"drop {kind} {dropped}")[0].endswith("successfully dropped.")

    assert "SAMPLE_DB.APPS.IMAGES" not in spcs.catalog.repositories
    with pytest.raises(snowflake.connector.errors.ProgrammingError):
        cursor.execute("select * from sample_db.apps.t")
    assert one(cursor, f"drop {kind} if exists {dropped}")[0].endswith("already dropped).")
    cursor.execute("drop database if exists sample_db")


def test_a_session_in_a_dropped_database_has_no_current_database(cursor) -> None:
    cursor.execute("create database gone_db")
    cursor.execute("drop database gone_db")

    assert one(cursor, "select current_database(), current_schema()") == (None, None)
    with pytest.raises(snowflake.connector.errors.ProgrammingError, match="does not have a current database"):
        cursor.execute("create table t (n int)")
    assert "GONE_DB" not in [row[1] for row in cursor.execute("show databases").fetchall()]


def test_variables_name_objects_through_identifier(cursor) -> None:
    cursor.execute("set pool_name = 'variable_pool'")
    cursor.execute("create compute pool identifier($pool_name) min_nodes=1 max_nodes=1 instance_family=CPU_X64_XS")

    assert one(cursor, "show compute pools like 'VARIABLE_POOL'")[0] == "VARIABLE_POOL"
    assert one(cursor, "drop compute pool identifier($POOL_NAME)") == ("VARIABLE_POOL successfully dropped.",)
    cursor.execute("unset pool_name")
    with pytest.raises(snowflake.connector.errors.ProgrammingError, match="Session variable '\\$POOL_NAME' does not"):
        cursor.execute("drop compute pool identifier($pool_name)")


@pytest.mark.parametrize(
    "sql",
    [
        "create user if not exists spcs_service_user type = service default_role = test_role",
        "alter user spcs_service_user set rsa_public_key = 'MIIB'",
        "drop user if exists spcs_service_user",
        "create role if not exists spcs_role",
        "grant usage on warehouse tutorial_warehouse to role spcs_role",
        "revoke usage on database tutorial_db from role spcs_role",
    ],
)
def test_users_roles_and_grants_succeed_as_no_ops(cursor, sql: str) -> None:
    assert one(cursor, sql)[0]


def test_the_context_functions_answer(cursor) -> None:
    assert one(
        cursor,
        "select current_account(), current_account_name(), current_organization_name(), current_region(), "
        "current_user()",
    ) == ("TUTORIAL", "TUTORIAL", "LOCAL", "LOCAL", "TUTORIAL_USER")
