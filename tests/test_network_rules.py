"""Network rules and external access integrations, as "External network access" sets them up: created, shown,
described and dropped, and checked where Snowflake checks them (an integration's rules and secrets, and the
integrations a service or job names)."""

from pathlib import Path

import pytest

from .fakes import LocalSPCS
from .test_local_spcs_statements import error_of
from .test_secrets import SPEC as JOB_SPEC

RULE = (
    "CREATE NETWORK RULE pypi_rule TYPE = HOST_PORT MODE = EGRESS "
    "VALUE_LIST = ('pypi.org', 'files.pythonhosted.org:443')"
)
INTEGRATION = (
    "CREATE EXTERNAL ACCESS INTEGRATION pypi_access ALLOWED_NETWORK_RULES = (pypi_rule) "
    "ALLOWED_AUTHENTICATION_SECRETS = (db_login) ENABLED = TRUE COMMENT = 'pip at build time'"
)


@pytest.fixture
def spcs(tmp_path: Path) -> LocalSPCS:
    spcs = LocalSPCS(tmp_path / "spcs")
    spcs.with_pool_and_images("my_job_image")
    spcs.sql("CREATE SECRET db_login TYPE = PASSWORD USERNAME = 'app' PASSWORD = 'pa55'")
    spcs.sql("CREATE SECRET api_key TYPE = GENERIC_STRING SECRET_STRING = 'key-123'")
    return spcs


def test_a_rule_and_an_integration_are_created_shown_described_and_dropped(spcs: LocalSPCS) -> None:
    assert spcs.value(RULE) == "Network rule PYPI_RULE successfully created."
    assert spcs.value(INTEGRATION) == "Integration PYPI_ACCESS successfully created."

    [rule] = spcs.rows("SHOW NETWORK RULES IN SCHEMA tutorial_db.data_schema")
    assert (rule["name"], rule["type"], rule["mode"], rule["entries_in_valuelist"]) == ("PYPI_RULE", "HOST_PORT",
                                                                                        "EGRESS", 2)  # fmt: skip
    assert spcs.rows("DESCRIBE NETWORK RULE pypi_rule")[0]["value_list"] == "pypi.org,files.pythonhosted.org:443"
    [integration] = spcs.rows("SHOW INTEGRATIONS LIKE 'PYPI%'")
    assert (integration["type"], integration["enabled"]) == ("EXTERNAL_ACCESS", True)
    described = {row["property"]: row["property_value"] for row in spcs.rows("DESCRIBE INTEGRATION pypi_access")}
    assert described["ALLOWED_NETWORK_RULES"] == "TUTORIAL_DB.DATA_SCHEMA.PYPI_RULE"
    assert described["ALLOWED_AUTHENTICATION_SECRETS"] == "TUTORIAL_DB.DATA_SCHEMA.DB_LOGIN"

    assert spcs.value("DROP INTEGRATION pypi_access") == "PYPI_ACCESS successfully dropped."
    assert spcs.value("DROP EXTERNAL ACCESS INTEGRATION IF EXISTS pypi_access").endswith("already dropped).")
    assert spcs.value("DROP NETWORK RULE pypi_rule") == "PYPI_RULE successfully dropped."
    assert spcs.rows("SHOW NETWORK RULES") == [] and spcs.restarted().rows("SHOW INTEGRATIONS") == []


@pytest.mark.parametrize(
    ("sql", "problem"),
    [
        (INTEGRATION, "Network rule 'PYPI_RULE' does not exist or not authorized."),
        (RULE.replace("pypi.org'", "pypi.org:99999'"), "Invalid value 'pypi.org:99999' in VALUE_LIST"),
        (RULE.replace("MODE = EGRESS", "MODE = OUTWARDS"), "MODE must be one of"),
        (RULE.replace("TYPE = HOST_PORT ", ""), "Missing option 'TYPE'"),
        (INTEGRATION.replace("ENABLED = TRUE", ""), "Missing option 'ENABLED'"),
    ],
)
def test_mistakes_are_snowflakes_errors(spcs: LocalSPCS, sql: str, problem: str) -> None:
    assert problem in error_of(spcs, sql).message


def test_an_integrations_secrets_must_exist(spcs: LocalSPCS) -> None:
    spcs.sql(RULE)

    failure = error_of(spcs, INTEGRATION.replace("(db_login)", "(no_such_secret)"))

    assert failure.message.endswith("Secret 'NO_SUCH_SECRET' does not exist or not authorized.")


@pytest.mark.parametrize(
    "statement",
    [
        f"EXECUTE JOB SERVICE IN COMPUTE POOL tutorial_compute_pool NAME = j EXTERNAL_ACCESS_INTEGRATIONS = (nope) "
        f"FROM SPECIFICATION $${JOB_SPEC}$$",
        f"CREATE SERVICE s IN COMPUTE POOL tutorial_compute_pool FROM SPECIFICATION $${JOB_SPEC}$$ "
        "EXTERNAL_ACCESS_INTEGRATIONS = (pypi_access, nope)",
    ],
)
def test_a_service_or_job_naming_an_integration_that_does_not_exist_fails(spcs: LocalSPCS, statement: str) -> None:
    spcs.sql(RULE)
    spcs.sql(INTEGRATION)

    assert error_of(spcs, statement).message.endswith("Integration 'NOPE' does not exist or not authorized.")


def test_alter_service_set_checks_and_keeps_the_integrations(spcs: LocalSPCS) -> None:
    spcs.sql(RULE)
    spcs.sql(INTEGRATION)
    spcs.sql(f"CREATE SERVICE s IN COMPUTE POOL tutorial_compute_pool FROM SPECIFICATION $${JOB_SPEC}$$")

    spcs.sql("ALTER SERVICE s SET EXTERNAL_ACCESS_INTEGRATIONS = (pypi_access)")

    assert spcs.rows("SHOW SERVICES LIKE 'S'")[0]["external_access_integrations"] == '["PYPI_ACCESS"]'
    assert "Integration 'NOPE'" in error_of(spcs, "ALTER SERVICE s SET EXTERNAL_ACCESS_INTEGRATIONS = (nope)").message


def test_a_workload_reaches_what_its_enabled_integrations_rules_allow(spcs: LocalSPCS) -> None:
    spcs.sql(RULE)
    spcs.sql(INTEGRATION)
    spcs.sql("CREATE NETWORK RULE all_https TYPE = HOST_PORT MODE = EGRESS VALUE_LIST = ('0.0.0.0:443')")
    spcs.sql("CREATE EXTERNAL ACCESS INTEGRATION off ALLOWED_NETWORK_RULES = (all_https) ENABLED = FALSE")
    job = "EXECUTE JOB SERVICE IN COMPUTE POOL tutorial_compute_pool NAME = {} {} FROM SPECIFICATION $${}$$"

    spcs.sql(job.format("closed", "", JOB_SPEC))
    spcs.sql(job.format("opened", "EXTERNAL_ACCESS_INTEGRATIONS = (pypi_access, off)", JOB_SPEC))

    closed, opened = spcs.backend.started[-2:]
    assert closed.egress == ()  # closed by default: the front and the schema's services only
    assert opened.egress == ("pypi.org:443", "files.pythonhosted.org:443")  # 443 where no port is named


def test_a_change_of_integrations_or_rules_reaches_running_services_at_once(spcs: LocalSPCS) -> None:
    spcs.sql(RULE)
    spcs.sql(INTEGRATION)
    spcs.sql(f"CREATE SERVICE s IN COMPUTE POOL tutorial_compute_pool FROM SPECIFICATION $${JOB_SPEC}$$")
    spcs.sql("SELECT SYSTEM$WAIT_FOR_SERVICES(10, 's')")
    spcs.sql("ALTER SERVICE s SET EXTERNAL_ACCESS_INTEGRATIONS = (pypi_access)")
    after_alter = running_egress(spcs, "S")
    spcs.sql("CREATE OR REPLACE NETWORK RULE pypi_rule TYPE = HOST_PORT MODE = EGRESS VALUE_LIST = ('pypi.org:8443')")
    after_rule = running_egress(spcs, "S")
    spcs.sql("DROP INTEGRATION pypi_access")

    assert after_alter == ("pypi.org:443", "files.pythonhosted.org:443")
    assert after_rule == ("pypi.org:8443",)
    assert running_egress(spcs, "S") == ()


def running_egress(spcs: LocalSPCS, name: str) -> tuple[str, ...]:
    """Where the running instance of a service may connect, as its backend was last told."""
    return spcs.backend.running[spcs.catalog.services[f"TUTORIAL_DB.DATA_SCHEMA.{name}"].instance_key(0)].egress


@pytest.mark.parametrize("value", ["pypi.org;reboot", "pypi.org:443:1", "../etc", "$(id)", "host name", "*.*"])
def test_a_rule_value_is_a_host_and_port_only(spcs: LocalSPCS, value: str) -> None:
    rule = f"CREATE NETWORK RULE r TYPE = HOST_PORT MODE = EGRESS VALUE_LIST = ('{value}')"

    assert "Invalid value" in error_of(spcs, rule).message


@pytest.mark.parametrize(
    ("grant", "problem"),
    [
        ("GRANT USAGE ON INTEGRATION nope TO ROLE r", "Integration 'NOPE' does not exist"),
        ("GRANT USAGE ON EXTERNAL ACCESS INTEGRATION nope TO ROLE r", "Integration 'NOPE' does not exist"),
        ("GRANT READ ON SECRET nope TO ROLE r", "Secret 'NOPE' does not exist"),
        ("REVOKE USAGE ON NETWORK RULE nope FROM ROLE r", "Network rule 'NOPE' does not exist"),
    ],
)
def test_a_grant_on_an_object_that_does_not_exist_fails_and_on_one_that_does_succeeds(
    spcs: LocalSPCS, grant: str, problem: str
) -> None:
    assert problem in error_of(spcs, grant).message
    spcs.sql(RULE)
    spcs.sql(INTEGRATION.replace("pypi_access", "nope"))
    spcs.sql(RULE.replace("pypi_rule", "nope"))
    spcs.sql("CREATE SECRET nope TYPE = GENERIC_STRING SECRET_STRING = 'x'")

    assert spcs.value(grant) == "Statement executed successfully."
