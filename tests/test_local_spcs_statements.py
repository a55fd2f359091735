"""The local SPCS's statement layer: every SPCS statement and its errors, over a fake backend (no Docker)."""

import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml

from spcs_local.emulator.results import SnowflakeError
from spcs_local.emulator.workload import Probe

from .conftest import ROOT
from .fakes import FakeBackend, LocalSPCS

ECHO_SPEC = (ROOT / "echo-service" / "echo_spec.yaml").read_text()
JOB_SPEC = (ROOT / "tutorial-2-job" / "my_job_spec.yaml").read_text()
REPOSITORY = "tutorial_db/data_schema/tutorial_repository"
CREATE_ECHO = (
    "CREATE SERVICE echo_service IN COMPUTE POOL tutorial_compute_pool FROM @tutorial_stage "
    "SPECIFICATION_FILE='echo_spec.yaml' MIN_INSTANCES=1 MAX_INSTANCES=1"
)
EXECUTE_JOB = (
    "EXECUTE JOB SERVICE IN COMPUTE POOL tutorial_compute_pool NAME=tutorial_2_job_service "
    "FROM @tutorial_stage SPECIFICATION_FILE='my_job_spec.yaml'"
)


@pytest.fixture
def spcs(tmp_path: Path) -> LocalSPCS:
    """After the tutorials' Common Setup, with both images pushed and both specs staged."""
    spcs = LocalSPCS(tmp_path)
    spcs.sql("CREATE COMPUTE POOL IF NOT EXISTS tutorial_compute_pool MIN_NODES = 1 MAX_NODES = 1 "
             "INSTANCE_FAMILY = CPU_X64_XS")  # fmt: skip
    spcs.sql("CREATE IMAGE REPOSITORY IF NOT EXISTS tutorial_repository")
    spcs.images.pushed |= {f"{REPOSITORY}/my_echo_service_image:latest", f"{REPOSITORY}/my_job_image:latest"}
    stage = "TUTORIAL_DB.DATA_SCHEMA.TUTORIAL_STAGE"
    spcs.stages.files |= {(stage, "echo_spec.yaml"): ECHO_SPEC, (stage, "my_job_spec.yaml"): JOB_SPEC}
    return spcs


def error_of(spcs: LocalSPCS, sql: str) -> SnowflakeError:
    with pytest.raises(SnowflakeError) as caught:
        spcs.sql(sql)
    return caught.value


# --- what a single machine has nothing to enforce for -------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE ROLE IF NOT EXISTS test_role",
        "DROP ROLE IF EXISTS test_role",
        "GRANT OWNERSHIP ON DATABASE tutorial_db TO ROLE test_role COPY CURRENT GRANTS",
        "GRANT BIND SERVICE ENDPOINT ON ACCOUNT TO ROLE test_role",
        "GRANT ROLE test_role TO USER IDENTIFIER($me)",
        "REVOKE USAGE ON WAREHOUSE w FROM ROLE r",
        "CREATE WAREHOUSE IF NOT EXISTS tutorial_warehouse WITH WAREHOUSE_SIZE='X-SMALL'",
        "ALTER WAREHOUSE tutorial_warehouse SUSPEND",
        "DROP WAREHOUSE IF EXISTS tutorial_warehouse",
        "ALTER SESSION SET PYTHON_CONNECTOR_QUERY_RESULT_FORMAT = 'json'",
        "USE SECONDARY ROLES ALL",
    ],
)
def test_roles_grants_warehouses_and_client_settings_succeed_as_no_ops(spcs: LocalSPCS, sql: str) -> None:
    assert spcs.sql(sql).columns[0].name == "status"


def test_use_role_and_warehouse_change_the_sessions_context(spcs: LocalSPCS) -> None:
    spcs.sql("USE ROLE accountadmin")
    spcs.sql('USE WAREHOUSE "Other WH"')

    assert (spcs.context.role, spcs.context.warehouse) == ("ACCOUNTADMIN", "Other WH")


@pytest.mark.parametrize(
    "sql", ["SELECT 1", "USE DATABASE tutorial_db", "CREATE TABLE t (a int)", "ALTER SESSION SET TIMEZONE = 'UTC'",
            "CREATE FUNCTION f(x int) RETURNS int AS 'x + 1'", "SHOW TABLES", "select system$other()"],
)  # fmt: skip
def test_other_statements_are_left_to_fakesnow(spcs: LocalSPCS, sql: str) -> None:
    assert spcs.statements.parse(sql) is None


# --- compute pools ------------------------------------------------------------------------------


def test_show_compute_pools_lists_the_pool_with_the_references_columns(spcs: LocalSPCS) -> None:
    [pool] = spcs.rows("SHOW COMPUTE POOLS LIKE 'tutorial%'")

    assert list(pool)[:5] == ["name", "state", "min_nodes", "max_nodes", "instance_family"]
    assert (pool["name"], pool["state"], pool["instance_family"], pool["owner"]) == (
        "TUTORIAL_COMPUTE_POOL", "IDLE", "CPU_X64_XS", "TEST_ROLE",
    )  # fmt: skip
    assert spcs.rows("SHOW COMPUTE POOLS LIKE 'other%'") == []


def test_create_compute_pool_twice(spcs: LocalSPCS) -> None:
    create = "CREATE COMPUTE POOL tutorial_compute_pool MIN_NODES = 1 MAX_NODES = 2 INSTANCE_FAMILY = CPU_X64_S"

    assert "already exists, statement succeeded" in spcs.value(create.replace("POOL", "POOL IF NOT EXISTS"))
    error = error_of(spcs, create)
    assert (error.code, error.message) == (
        "002002",
        "SQL compilation error:\nObject 'TUTORIAL_COMPUTE_POOL' already exists.",
    )
    spcs.sql(create.replace("CREATE", "CREATE OR REPLACE"))
    assert spcs.rows("DESCRIBE COMPUTE POOL tutorial_compute_pool")[0]["max_nodes"] == 2


@pytest.mark.parametrize(
    ("sql", "problem"),
    [
        ("CREATE COMPUTE POOL p MIN_NODES = 1 MAX_NODES = 1", "Missing option 'INSTANCE_FAMILY'"),
        ("CREATE COMPUTE POOL p MIN_NODES = 2 MAX_NODES = 1 INSTANCE_FAMILY = X", "MAX_NODES must be greater"),
        ("CREATE COMPUTE POOL p MIN_NODES = 'one' MAX_NODES = 1 INSTANCE_FAMILY = X", "MIN_NODES must be a whole"),
        ("CREATE COMPUTE POOL p MIN_NODES = 1 MAX_NODES = 1 INSTANCE_FAMILY = X AUTO_RESUME = 3", "TRUE or FALSE"),
        ("CREATE COMPUTE POOL p MIN_NODES = 1 MAX_NODES =", "syntax error line 1 at position 47 unexpected '<EOF>'"),
        ("DROP COMPUTE POOL nope", "Compute pool 'NOPE' does not exist or not authorized."),
        ("ALTER COMPUTE POOL nope SUSPEND", "Compute pool 'NOPE' does not exist or not authorized."),
        ("ALTER COMPUTE POOL tutorial_compute_pool EXPLODE", "Unsupported feature"),
    ],
)
def test_compute_pool_errors_name_the_problem(spcs: LocalSPCS, sql: str, problem: str) -> None:
    assert problem in error_of(spcs, sql).message


def test_suspend_resume_and_stop_all(spcs: LocalSPCS) -> None:
    spcs.sql(CREATE_ECHO)
    spcs.sql("ALTER COMPUTE POOL tutorial_compute_pool SUSPEND")
    assert spcs.rows("SHOW COMPUTE POOLS")[0]["state"] == "SUSPENDED"
    assert spcs.rows("SHOW SERVICES")[0]["status"] == "SUSPENDED"

    spcs.sql("ALTER COMPUTE POOL tutorial_compute_pool RESUME")
    assert spcs.rows("SHOW COMPUTE POOLS")[0]["state"] == "ACTIVE"

    spcs.sql("ALTER COMPUTE POOL tutorial_compute_pool STOP ALL")  # drops the pool's services, as in SPCS
    assert spcs.rows("SHOW SERVICES") == []
    assert spcs.rows("SHOW COMPUTE POOLS")[0]["state"] == "IDLE"


def test_a_pool_with_services_cant_be_dropped_until_they_stop(spcs: LocalSPCS) -> None:
    spcs.sql(CREATE_ECHO)

    assert "STOP ALL" in error_of(spcs, "DROP COMPUTE POOL tutorial_compute_pool").message
    spcs.sql("ALTER COMPUTE POOL tutorial_compute_pool STOP ALL")
    assert (
        spcs.value("DROP COMPUTE POOL IF EXISTS tutorial_compute_pool") == "TUTORIAL_COMPUTE_POOL successfully dropped."
    )
    assert "already dropped" in spcs.value("DROP COMPUTE POOL IF EXISTS tutorial_compute_pool")


# --- image repositories ---------------------------------------------------------------------------


def test_a_repositorys_url_names_the_local_registry_in_lowercase(spcs: LocalSPCS) -> None:
    # What `snow spcs image-repository url tutorial_repository` sends.
    [repository] = spcs.rows("show image repositories like 'TUTORIAL\\\\_REPOSITORY'")

    assert repository["repository_url"] == f"127.0.0.1:5000/{REPOSITORY}"
    assert (repository["name"], repository["database_name"], repository["schema_name"]) == (
        "TUTORIAL_REPOSITORY", "TUTORIAL_DB", "DATA_SCHEMA",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("scope", "count"),
    [("", 1), (" IN ACCOUNT", 1), (" IN DATABASE", 1), (" IN DATABASE other_db", 0), (" IN SCHEMA data_schema", 1),
     (" IN SCHEMA tutorial_db.other", 0), (" in schema snowflake.images", 0), (" IN tutorial_db.data_schema", 1)],
)  # fmt: skip
def test_show_image_repositories_honours_in(spcs: LocalSPCS, scope: str, count: int) -> None:
    assert len(spcs.rows(f"SHOW IMAGE REPOSITORIES{scope}")) == count


@pytest.mark.parametrize("name", ['"../../x"', '"a/b"', '"Two Words"', '".."'])
def test_a_repository_name_that_cant_be_a_registry_path_is_refused(spcs: LocalSPCS, name: str) -> None:
    assert "can't be part of that path" in error_of(spcs, f"CREATE IMAGE REPOSITORY {name}").message


def test_show_images_lists_what_was_pushed_and_drop_deletes_it(spcs: LocalSPCS) -> None:
    images = spcs.rows("SHOW IMAGES IN IMAGE REPOSITORY tutorial_repository")

    assert [(i["image_name"], i["tags"], i["image_path"]) for i in images] == [
        ("my_echo_service_image", "latest", f"{REPOSITORY}/my_echo_service_image:latest"),
        ("my_job_image", "latest", f"{REPOSITORY}/my_job_image:latest"),
    ]
    assert len(spcs.rows("show images like 'my_job%' in image repository tutorial_repository")) == 1
    spcs.sql("DROP IMAGE REPOSITORY tutorial_repository")
    assert spcs.images.deleted == [REPOSITORY]
    assert "does not exist" in error_of(spcs, "SHOW IMAGES IN IMAGE REPOSITORY tutorial_repository").message


# --- services -------------------------------------------------------------------------------------


def test_create_service_runs_the_staged_spec_as_spcs_would(spcs: LocalSPCS) -> None:
    assert spcs.value(CREATE_ECHO) == "Service ECHO_SERVICE successfully created."
    assert spcs.value("SELECT SYSTEM$WAIT_FOR_SERVICES(600, 'echo_service')") == "OK"

    [workload] = spcs.backend.started
    assert workload.hostnames[0] == "echo-service"
    assert workload.ports == (8000,)
    [echo] = workload.containers
    assert echo.image == f"127.0.0.1:5000/{REPOSITORY}/my_echo_service_image:latest"
    assert echo.env["SERVER_PORT"] == "8000"  # every env value a string, as SPCS gives it
    injected = {name: value for name, value in echo.env.items() if name.startswith("SNOWFLAKE_")}
    assert injected == {  # exactly what SPCS injects: no SNOWFLAKE_PROTOCOL, nothing local-only
        "SNOWFLAKE_ACCOUNT": "tutorial", "SNOWFLAKE_HOST": "snowflake.local-spcs.internal", "SNOWFLAKE_PORT": "443",
        "SNOWFLAKE_DATABASE": "TUTORIAL_DB", "SNOWFLAKE_SCHEMA": "DATA_SCHEMA",
    }  # fmt: skip
    token = echo.files["/snowflake/session/token"]  # a random token of this service's, for its login
    assert spcs.catalog.valid_token(token.text) and not spcs.catalog.valid_token("local-spcs-session-token")
    assert token.mode == 0o644  # the reference's default
    kept = next((spcs.path / "tokens").iterdir())  # kept for restarts, for the host's user alone
    assert (kept.stat().st_mode & 0o777, kept.parent.stat().st_mode & 0o777) == (0o600, 0o700)
    assert (echo.memory, echo.nano_cpus) == (6 * 2**30, 10**9)  # no resources.limits: a CPU_X64_XS node's capacity
    assert workload.front == (443, 8765) and workload.egress == ()  # the front, and no egress without integrations


def test_session_token_config_places_the_token_and_a_connections_toml(spcs: LocalSPCS) -> None:
    image = "/tutorial_db/data_schema/tutorial_repository/my_job_image:latest"
    spec = JOB_SPEC.replace(
        "  - name: main\n",
        '  - name: main\n    sessionTokenConfig:\n      path: /app/session\n      permission: "0600"\n'
        "      mountConnectionConfig: true\n",
    )
    spec += f"  - name: untouched\n    image: {image}\n"
    spec += f"  - name: tokenless\n    image: {image}\n    mountSessionToken: false\n"
    spcs.sql(f"EXECUTE JOB SERVICE IN COMPUTE POOL tutorial_compute_pool NAME = session_job "
             f"FROM SPECIFICATION $$ {spec} $$")  # fmt: skip

    main, untouched, tokenless = spcs.backend.started[-1].containers
    assert sorted(main.files) == ["/app/session/connections.toml", "/app/session/token"]
    assert {file.mode for file in main.files.values()} == {0o600}  # the file's mode is the token's
    assert main.env["SNOWFLAKE_HOME"] == "/app/session"
    connection = tomllib.loads(main.files["/app/session/connections.toml"].text)["default"]
    assert connection == {
        "account": "tutorial", "host": "snowflake.local-spcs.internal", "port": 443, "protocol": "https",
        "authenticator": "oauth", "token_file_path": "/app/session/token",
        "database": "TUTORIAL_DB", "schema": "DATA_SCHEMA",
    }  # fmt: skip
    assert sorted(untouched.files) == ["/snowflake/session/token"] and "SNOWFLAKE_HOME" not in untouched.env
    assert tokenless.files == {} and "SNOWFLAKE_HOME" not in tokenless.env


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ("mountSessionToken: false\n    sessionTokenConfig: {path: /app/s}", "mountSessionToken is false"),
        ('sessionTokenConfig: {permission: "0600"}', "permission applies only with a path"),
        ('sessionTokenConfig: {path: /app/s, permission: "0666"}', "can't grant more than"),
        ('sessionTokenConfig: {path: /app/s, permission: "0244"}', "must keep the owner's read"),
        ("sessionTokenConfig: {path: /app/s, permission: 0600}", "quoted four-digit octal"),
        ("sessionTokenConfig: {path: /app/../s}", "normalized"),
        ("sessionTokenConfig: {path: /app/s/}", "normalized"),
        ("sessionTokenConfig: {}", "at least one of"),
    ],
)
def test_a_session_token_config_spcs_refuses_fails_the_job(spcs: LocalSPCS, config: str, problem: str) -> None:
    spec = JOB_SPEC.replace("  - name: main\n", f"  - name: main\n    {config}\n")
    with pytest.raises(SnowflakeError, match="Invalid spec") as error:
        spcs.sql(f"EXECUTE JOB SERVICE IN COMPUTE POOL tutorial_compute_pool NAME = bad "
                 f"FROM SPECIFICATION $$ {spec} $$")  # fmt: skip
    assert problem in error.value.message


def test_the_tutorials_spec_and_specification_forms_work_too(spcs: LocalSPCS) -> None:
    spcs.sql(CREATE_ECHO.replace("echo_service", "from_spec").replace("SPECIFICATION_FILE", "SPEC"))
    inline = json.dumps(yaml.safe_load(ECHO_SPEC))  # as `snow spcs service create` sends it
    spcs.sql(f"CREATE SERVICE inline_spec IN COMPUTE POOL tutorial_compute_pool FROM SPECIFICATION $$ {inline} $$")

    assert [row["name"] for row in spcs.rows("SHOW SERVICES")] == ["FROM_SPEC", "INLINE_SPEC"]


def test_a_spec_the_linter_only_warns_about_runs_as_spcs_reads_it(spcs: LocalSPCS) -> None:
    singular = ECHO_SPEC.replace("containers:", "container:").replace("endpoints:", "endpoint:")

    spcs.sql(f"CREATE SERVICE singular IN COMPUTE POOL tutorial_compute_pool FROM SPECIFICATION $$ {singular} $$")
    spcs.sql("SELECT SYSTEM$WAIT_FOR_SERVICES(10, 'singular')")  # it starts in the background

    [workload] = spcs.backend.started
    assert [container.name for container in workload.containers] == ["echo"] and workload.ports == (8000,)
    assert [row["name"] for row in spcs.rows("SHOW ENDPOINTS IN SERVICE singular")] == ["echoendpoint"]


# --- specification templates ----------------------------------------------------------------------------

ECHO_TEMPLATE = """spec:
  containers:
  - name: echo
    image: /tutorial_db/data_schema/tutorial_repository/my_echo_service_image:{{ tag_name }}
    env: {{ env_values }}
    readinessProbe:
      port: {{SERVER_PORT}}
      path: /healthcheck
  endpoints:
  - name: {{ endpoint_name | default('echoendpoint') }}
    port: {{SERVER_PORT}}
"""


def test_a_template_is_rendered_with_its_using_values_as_the_docs_show(spcs: LocalSPCS) -> None:
    spcs.sql(
        "CREATE SERVICE templated IN COMPUTE POOL tutorial_compute_pool MIN_INSTANCES=1 "
        f"FROM SPECIFICATION_TEMPLATE $${ECHO_TEMPLATE}$$ "
        "USING (tag_name=>'latest', SERVER_PORT=>8000, "
        """env_values=>'{"SERVER_PORT": 8000, "CHARACTER_NAME": "Bob"}')"""
    )
    spcs.sql("SELECT SYSTEM$WAIT_FOR_SERVICES(10, 'templated')")  # it starts in the background

    [workload] = spcs.backend.started
    [echo] = workload.containers
    assert echo.image == f"127.0.0.1:5000/{REPOSITORY}/my_echo_service_image:latest"
    assert (echo.env["CHARACTER_NAME"], echo.env["SERVER_PORT"], workload.ports) == ("Bob", "8000", (8000,))
    assert [row["name"] for row in spcs.rows("SHOW ENDPOINTS IN SERVICE templated")] == ["echoendpoint"]


def test_a_staged_template_runs_as_a_job_and_upgrades_a_service(spcs: LocalSPCS) -> None:
    stage = "TUTORIAL_DB.DATA_SCHEMA.TUTORIAL_STAGE"
    spcs.stages.files[(stage, "job.yaml")] = JOB_SPEC.split("    args:")[0] + "    args: {{ ARGS }}\n"
    spcs.stages.files[(stage, "echo.yaml")] = ECHO_TEMPLATE
    spcs.sql(CREATE_ECHO)
    spcs.sql("SELECT SYSTEM$WAIT_FOR_SERVICES(10, 'echo_service')")

    spcs.sql(
        "EXECUTE JOB SERVICE IN COMPUTE POOL tutorial_compute_pool NAME=templated_job "
        """FROM @tutorial_stage SPECIFICATION_TEMPLATE_FILE='job.yaml' USING (ARGS=>$$["--query=select 1", "-n"]$$)"""
    )
    spcs.sql(
        "ALTER SERVICE echo_service FROM @tutorial_stage SPECIFICATION_TEMPLATE_FILE='echo.yaml' "
        """USING (tag_name=>'latest', SERVER_PORT=>8080, env_values=>'{"CHARACTER_NAME": "Alice"}')"""
    )

    _, job, upgraded = spcs.backend.started
    assert job.containers[0].args == ["--query=select 1", "-n"]
    assert upgraded.containers[0].env["CHARACTER_NAME"] == "Alice" and upgraded.ports == (8080,)


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("spec: {{ missing }}", "Invalid specification template: 'missing' is undefined."),
        ("{% for i in range(9) %}x{% endfor %}", "not for"),
        ("{{ tag_name * 1000000 }}", "not mul"),
        ("{{ tag_name.__class__ }}", "not getattr"),
        ("spec: {{ tag_name", "unexpected end of template"),
        ("spec:\n  containers:\n  - name: {{ tag_name }}\n", "Invalid spec: spec.containers[0]: missing 'image'"),
    ],
)  # fmt: skip
def test_a_template_that_cant_be_rendered_or_renders_a_bad_spec_is_refused(
    spcs: LocalSPCS, template: str, problem: str
) -> None:
    sql = f"CREATE SERVICE t IN COMPUTE POOL tutorial_compute_pool FROM SPECIFICATION_TEMPLATE $${template}$$ "

    assert problem in error_of(spcs, sql + "USING (tag_name => 'main')").message
    assert spcs.backend.started == [] and spcs.rows("SHOW SERVICES") == []


def test_a_service_is_ready_only_once_every_container_of_its_spec_is(spcs: LocalSPCS) -> None:
    image = f"/{REPOSITORY}/my_echo_service_image:latest"
    two = f"spec:\n  containers:\n  - name: first\n    image: {image}\n  - name: second\n    image: {image}\n"
    spcs.backend.created = 1  # the second container is not made yet

    spcs.sql(f"CREATE SERVICE two IN COMPUTE POOL tutorial_compute_pool FROM SPECIFICATION $${two}$$")
    with pytest.raises(SnowflakeError, match="waiting for the services to be READY: TWO is PENDING"):
        spcs.sql("SELECT SYSTEM$WAIT_FOR_SERVICES(1, 'two')")
    containers = spcs.rows("SHOW SERVICE CONTAINERS IN SERVICE two")
    spcs.backend.created = None

    assert [(row["container_name"], row["status"]) for row in containers] == [("first", "READY"), ("second", "PENDING")]
    assert spcs.value("SELECT SYSTEM$WAIT_FOR_SERVICES(10, 'two')") == "OK"


def test_a_spec_with_probe_timings_and_a_liveness_probe_runs(spcs: LocalSPCS) -> None:
    probes = (ROOT / "tests" / "specs" / "reference" / "liveness-probe.yaml").read_text()
    probes = probes.replace("echo_service:dev", "my_echo_service_image:latest")

    spcs.sql(f"CREATE SERVICE probed IN COMPUTE POOL tutorial_compute_pool FROM SPECIFICATION $$ {probes} $$")

    assert spcs.value("SELECT SYSTEM$WAIT_FOR_SERVICES(10, 'probed')") == "OK"
    [workload] = spcs.backend.started
    assert workload.containers[0].readiness == Probe(8088, "/healthcheck")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"FROM @tutorial_stage": "FROM @other_stage"}, "'echo_spec.yaml' was not found on stage"),
        ({"tutorial_compute_pool": "no_pool"}, "Compute pool 'NO_POOL' does not exist or not authorized."),
        ({"echo_spec.yaml": "bad_spec.yaml"}, "Invalid spec: spec.containers[0]: missing 'image' (line 3)."),
        ({"echo_spec.yaml": "unpushed.yaml"}, "was not found in image repository TUTORIAL_DB.DATA_SCHEMA."
         f"TUTORIAL_REPOSITORY: push it first (docker push 127.0.0.1:5000/{REPOSITORY}/never_pushed:latest)"),
        ({"echo_spec.yaml": "no_repo.yaml"}, "Image repository 'TUTORIAL_DB.DATA_SCHEMA.NO_REPO' does not exist"),
        ({"echo_spec.yaml": "secrets.yaml"}, "Secret 'S' does not exist or not authorized."),
        ({"MIN_INSTANCES=1": "MIN_INSTANCES=0"}, "MIN_INSTANCES must be a whole number of 1 or more"),
        ({"IN COMPUTE POOL": "IN COMPUTE"}, "syntax error"),
    ],
)  # fmt: skip
def test_create_service_errors_name_the_problem(spcs: LocalSPCS, change: dict[str, str], problem: str) -> None:
    stage = "TUTORIAL_DB.DATA_SCHEMA.TUTORIAL_STAGE"
    spcs.stages.files[(stage, "bad_spec.yaml")] = "spec:\n  containers:\n  - name: main\n"
    spcs.stages.files[(stage, "unpushed.yaml")] = ECHO_SPEC.replace("my_echo_service_image", "never_pushed")
    spcs.stages.files[(stage, "no_repo.yaml")] = ECHO_SPEC.replace("tutorial_repository", "no_repo")
    spcs.stages.files[(stage, "secrets.yaml")] = (
        JOB_SPEC + "    secrets:\n    - snowflakeSecret: s\n      envVarName: X\n      secretKeyRef: password\n"
    )
    sql = CREATE_ECHO
    for old, new in change.items():
        sql = sql.replace(old, new)

    assert problem in error_of(spcs, sql).message
    assert spcs.backend.started == [] and spcs.rows("SHOW SERVICES") == []


def test_what_snow_sends_for_create_stop_all_and_drop(spcs: LocalSPCS) -> None:
    spec = json.dumps(yaml.safe_load(ECHO_SPEC))
    # `snow spcs service create echo --compute-pool tutorial_compute_pool --spec-path echo_spec.yaml`
    spcs.sql(f"CREATE SERVICE echo\nIN COMPUTE POOL tutorial_compute_pool\nFROM SPECIFICATION $$\n{spec}\n$$\n"
             "MIN_INSTANCES = 1\nMAX_INSTANCES = 1\nAUTO_RESUME = True")  # fmt: skip
    assert spcs.rows("SHOW SERVICES")[0]["auto_resume"] is True

    spcs.sql("alter compute pool tutorial_compute_pool stop all")  # snow spcs compute-pool stop-all
    spcs.sql("drop compute pool IDENTIFIER('tutorial_compute_pool')")  # snow spcs compute-pool drop

    assert spcs.rows("SHOW SERVICES") == [] and spcs.rows("SHOW COMPUTE POOLS") == []


def test_create_service_twice(spcs: LocalSPCS) -> None:
    spcs.sql(CREATE_ECHO)

    assert error_of(spcs, CREATE_ECHO).code == "002002"
    assert "already exists" in spcs.value(
        CREATE_ECHO.replace("SERVICE echo_service", "SERVICE IF NOT EXISTS echo_service")
    )


def test_show_and_describe_service(spcs: LocalSPCS) -> None:
    spcs.sql(CREATE_ECHO)
    spcs.sql("SELECT SYSTEM$WAIT_FOR_SERVICES(10, 'echo_service')")

    [service] = spcs.rows("SHOW SERVICES IN SCHEMA tutorial_db.data_schema")
    assert list(service)[:8] == ["name", "status", "database_name", "schema_name", "owner", "compute_pool",
                                 "dns_name", "current_instances"]  # fmt: skip
    assert (service["name"], service["status"], service["is_job"], service["owner"]) == (
        "ECHO_SERVICE", "RUNNING", False, "TEST_ROLE",
    )  # fmt: skip
    assert service["dns_name"].startswith("echo-service.") and service["dns_name"].endswith(".svc.spcs.internal")
    [described] = spcs.rows("describe service IDENTIFIER('echo_service')")
    assert "readinessProbe:" in described["spec"] and described["status"] == "RUNNING"
    assert spcs.rows("SHOW JOB SERVICES") == [] and len(spcs.rows("show services like '%%'")) == 1
    assert len(spcs.rows("SHOW SERVICES IN COMPUTE POOL tutorial_compute_pool")) == 1
    assert spcs.rows("SHOW SERVICES IN DATABASE other_db") == []


def test_a_service_is_pending_until_its_readiness_probe_answers(tmp_path: Path) -> None:
    spcs = LocalSPCS(tmp_path, FakeBackend(pending=True))
    spcs.sql("CREATE COMPUTE POOL p MIN_NODES = 1 MAX_NODES = 1 INSTANCE_FAMILY = CPU_X64_XS")
    spcs.sql("CREATE IMAGE REPOSITORY tutorial_repository")
    spcs.images.pushed.add(f"{REPOSITORY}/my_echo_service_image:latest")
    spcs.sql(f"CREATE SERVICE echo_service IN COMPUTE POOL p FROM SPECIFICATION $${ECHO_SPEC}$$")

    assert spcs.rows("SHOW SERVICES")[0]["status"] == "PENDING"
    error = error_of(spcs, "SELECT SYSTEM$WAIT_FOR_SERVICES(0.3, 'echo_service')")
    assert "Timed out after 0.3 s waiting for the services to be READY: ECHO_SERVICE is PENDING." in error.message


def test_wait_for_services_fails_at_once_when_a_service_failed(spcs: LocalSPCS) -> None:
    spcs.backend.fail_start = "Failed to pull image x: manifest unknown"
    spcs.sql(CREATE_ECHO)

    error = error_of(spcs, "SELECT SYSTEM$WAIT_FOR_SERVICES(600, 'echo_service')")
    assert "Service ECHO_SERVICE is FAILED (echo: Failed to pull image x: manifest unknown)." in error.message


def test_containers_instances_and_endpoints(spcs: LocalSPCS) -> None:
    spcs.sql(CREATE_ECHO)
    spcs.sql("SELECT SYSTEM$WAIT_FOR_SERVICES(60, 'echo_service')")

    [c] = spcs.rows("show service containers in service echo_service")
    assert (c["instance_id"], c["instance_status"], c["container_name"], c["status"]) == ("0", "READY", "echo", "READY")
    [instance] = spcs.rows("show service instances in service echo_service")
    assert (instance["status"], instance["service_status"]) == ("READY", "RUNNING")
    [endpoint] = spcs.rows("show endpoints in service echo_service")
    ingress = spcs.catalog.services["TUTORIAL_DB.DATA_SCHEMA.ECHO_SERVICE"].ingress["echoendpoint"]
    assert endpoint == {"name": "echoendpoint", "port": 8000, "port_range": None, "protocol": "HTTP",
                        "is_public": True, "ingress_url": f"127.0.0.1:{ingress}"}  # fmt: skip


def test_logs_of_a_service(spcs: LocalSPCS) -> None:
    spcs.sql(CREATE_ECHO)
    # What `snow spcs service logs echo_service --container-name echo --instance-id 0` sends.
    logs = spcs.value("call SYSTEM$GET_SERVICE_LOGS('echo_service', '0', 'echo', 500, False, '', False);")

    assert re.fullmatch(r"TUTORIAL_DB.DATA_SCHEMA.ECHO_SERVICE#\w+/0 echo line 0", logs.splitlines()[0])
    assert "no container 'nope'" in error_of(spcs, "SELECT SYSTEM$GET_SERVICE_LOGS('echo_service', 0, 'nope')").message
    assert "no instance 1" in error_of(spcs, "SELECT SYSTEM$GET_SERVICE_LOGS('echo_service', 1, 'echo')").message
    assert "does not exist" in error_of(spcs, "SELECT SYSTEM$GET_SERVICE_LOGS('nope', 0, 'echo')").message


def test_logs_with_timestamps_and_since_as_snow_streams_them(spcs: LocalSPCS) -> None:
    spcs.sql(CREATE_ECHO)
    # What `snow spcs service logs ... --follow` (and --include-timestamps, --since) sends.
    stamped = spcs.value("call SYSTEM$GET_SERVICE_LOGS('echo_service', '0', 'echo', 500, False, '', True);")
    since = stamped.splitlines()[0].split(" ", 1)[0]
    later = spcs.value(f"call SYSTEM$GET_SERVICE_LOGS('echo_service', '0', 'echo', 500, False, '{since}', True);")

    assert [line.split(" ")[0] for line in stamped.splitlines()] == [
        "2026-01-01T00:00:00.000000000Z", "2026-01-01T00:00:01.000000000Z", "2026-01-01T00:00:02.000000000Z",
    ]  # fmt: skip
    assert later.splitlines() == stamped.splitlines()[1:]  # only what came after
    bad = "call SYSTEM$GET_SERVICE_LOGS('echo_service', '0', 'echo', 500, False, 'yesterday', True)"
    assert "since_timestamp is a timestamp" in error_of(spcs, bad).message


def test_previous_logs_are_the_run_before_the_last_restart(spcs: LocalSPCS) -> None:
    spcs.sql(CREATE_ECHO)
    # What `snow spcs service logs echo_service --container-name echo --instance-id 0 --previous-logs` sends.
    previous = spcs.value("call SYSTEM$GET_SERVICE_LOGS('echo_service', '0', 'echo', 500, True, '', False);")

    assert previous.splitlines()[0].endswith("echo previous 0")


def test_a_jobs_kept_logs_answer_with_timestamps_and_since_too(spcs: LocalSPCS) -> None:
    spcs.sql(EXECUTE_JOB)

    plain = spcs.value("SELECT SYSTEM$GET_SERVICE_LOGS('tutorial_2_job_service', 0, 'main')")
    since = spcs.value(
        "SELECT SYSTEM$GET_SERVICE_LOGS('tutorial_2_job_service', 0, 'main', 10, FALSE, '2026-01-01T00:00:01Z', TRUE)"
    )

    assert plain.splitlines()[0].endswith("main line 0") and not plain.startswith("2026-")
    assert since.splitlines() == [since.splitlines()[0]] and since.startswith("2026-01-01T00:00:02")


def test_suspend_resume_and_drop_a_service(spcs: LocalSPCS) -> None:
    spcs.sql(CREATE_ECHO)
    spcs.sql("ALTER SERVICE echo_service SUSPEND")
    assert spcs.rows("SHOW SERVICES")[0]["status"] == "SUSPENDED"
    spcs.sql("ALTER SERVICE echo_service RESUME")
    workload = spcs.catalog.services["TUTORIAL_DB.DATA_SCHEMA.ECHO_SERVICE"].instance_key(0)

    assert spcs.value("drop service IDENTIFIER('echo_service')") == "ECHO_SERVICE successfully dropped."
    assert workload in spcs.backend.removed
    assert not spcs.catalog.tokens  # its containers' token logs in no more
    assert error_of(spcs, "DROP SERVICE echo_service").message.endswith(
        "Service 'ECHO_SERVICE' does not exist or not authorized."
    )


def test_set_and_unset_keep_and_show_a_services_properties(spcs: LocalSPCS) -> None:
    spcs.sql(CREATE_ECHO)

    spcs.sql("ALTER SERVICE echo_service SET AUTO_SUSPEND_SECS = 1200 QUERY_WAREHOUSE = wh COMMENT = 'echo' "
             "MIN_READY_INSTANCES = 1 LOG_LEVEL = 'debug'")  # fmt: skip
    after_set = spcs.rows("DESCRIBE SERVICE echo_service")[0]
    service = spcs.catalog.services["TUTORIAL_DB.DATA_SCHEMA.ECHO_SERVICE"]
    kept_level = service.log_level
    spcs.sql("ALTER SERVICE echo_service UNSET AUTO_SUSPEND_SECS, QUERY_WAREHOUSE, COMMENT, LOG_LEVEL")
    after_unset = spcs.rows("SHOW SERVICES LIKE 'ECHO_SERVICE'")[0]

    assert (after_set["auto_suspend_secs"], after_set["query_warehouse"], after_set["comment"]) == (1200, "WH", "echo")
    assert (after_set["min_ready_instances"], kept_level) == (1, "DEBUG")
    assert (after_unset["auto_suspend_secs"], after_unset["query_warehouse"], after_unset["comment"]) == (0, None, None)
    assert service.log_level is None
    assert "invalid property 'SPEC'" in error_of(spcs, "ALTER SERVICE echo_service UNSET SPEC").message
    assert "invalid property 'SPEC'" in error_of(spcs, "ALTER SERVICE echo_service SET SPEC = 'x'").message
    assert (
        "invalid value [LOUD] for parameter 'LOG_LEVEL'"
        in error_of(spcs, "ALTER SERVICE echo_service SET LOG_LEVEL = 'LOUD'").message
    )


def test_alter_service_from_a_new_spec_starts_it_before_the_old_instance_stops(spcs: LocalSPCS) -> None:
    spcs.sql(CREATE_ECHO)
    spcs.sql("SELECT SYSTEM$WAIT_FOR_SERVICES(10, 'echo_service')")
    old = spcs.catalog.services["TUTORIAL_DB.DATA_SCHEMA.ECHO_SERVICE"]
    old_token = spcs.catalog.tokens[old.workload_key]
    alice = ECHO_SPEC.replace("CHARACTER_NAME: Bob", "CHARACTER_NAME: Alice")

    assert spcs.value(f"ALTER SERVICE echo_service FROM SPECIFICATION $$ {alice} $$") == (
        "Statement executed successfully."
    )

    new = spcs.catalog.services["TUTORIAL_DB.DATA_SCHEMA.ECHO_SERVICE"]
    assert spcs.backend.started[-1].key == new.instance_key(0) != old.instance_key(0)
    assert spcs.backend.started[-1].containers[0].env["CHARACTER_NAME"] == "Alice"
    assert spcs.backend.removed[-1] == old.instance_key(0)  # after the new one was READY
    assert not spcs.catalog.valid_token(old_token)
    assert spcs.rows("DESCRIBE SERVICE echo_service")[0]["spec_digest"] == new.spec_digest != old.spec_digest
    spcs.sql("ALTER SERVICE echo_service FROM @tutorial_stage SPECIFICATION_FILE = 'echo_spec.yaml'")  # and back
    assert "CHARACTER_NAME: Bob" in spcs.catalog.services["TUTORIAL_DB.DATA_SCHEMA.ECHO_SERVICE"].spec


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda spec: spec.replace("image:", "imag:"), "Invalid spec"),
        (lambda spec: spec.replace("my_echo_service_image", "never_pushed"), "push it first"),
    ],
)
def test_an_upgrade_that_cant_run_fails_and_the_service_keeps_serving(spcs: LocalSPCS, change, problem) -> None:
    spcs.sql(CREATE_ECHO)
    spcs.sql("SELECT SYSTEM$WAIT_FOR_SERVICES(10, 'echo_service')")
    before = spcs.catalog.services["TUTORIAL_DB.DATA_SCHEMA.ECHO_SERVICE"]

    failure = error_of(spcs, f"ALTER SERVICE echo_service FROM SPECIFICATION $$ {change(ECHO_SPEC)} $$")

    assert problem in failure.message
    assert spcs.catalog.services["TUTORIAL_DB.DATA_SCHEMA.ECHO_SERVICE"] is before
    assert spcs.backend.removed == [] and spcs.rows("SHOW SERVICES")[0]["status"] == "RUNNING"


def test_an_upgrade_whose_instance_fails_to_start_leaves_the_old_one(spcs: LocalSPCS) -> None:
    spcs.sql(CREATE_ECHO)
    spcs.sql("SELECT SYSTEM$WAIT_FOR_SERVICES(10, 'echo_service')")
    before = spcs.catalog.services["TUTORIAL_DB.DATA_SCHEMA.ECHO_SERVICE"]
    spcs.backend.fail_start = "Container echo could not start: no space left"

    failure = error_of(spcs, f"ALTER SERVICE echo_service FROM SPECIFICATION $$ {ECHO_SPEC} $$")

    assert "no space left" in failure.message
    assert spcs.catalog.services["TUTORIAL_DB.DATA_SCHEMA.ECHO_SERVICE"] is before
    assert before.instance_key(0) in spcs.backend.running


def test_show_roles_in_service_lists_the_default_role_and_the_specs(spcs: LocalSPCS) -> None:
    spec = ECHO_SPEC + "serviceRoles:\n- name: echo_users\n  endpoints:\n  - echoendpoint\n"
    spcs.sql(f"CREATE SERVICE with_roles IN COMPUTE POOL tutorial_compute_pool FROM SPECIFICATION $$ {spec} $$")

    roles = spcs.rows("SHOW ROLES IN SERVICE with_roles")
    spcs.sql("GRANT SERVICE ROLE with_roles!echo_users TO ROLE test_role")
    grants = spcs.rows("SHOW GRANTS TO SERVICE ROLE with_roles!echo_users")

    assert [role["name"] for role in roles] == ["ALL_ENDPOINTS_USAGE", "ECHO_USERS"]
    assert [(g["privilege"], g["granted_on"], g["name"]) for g in grants] == [
        ("USAGE", "SERVICE_ENDPOINT", "TUTORIAL_DB.DATA_SCHEMA.WITH_ROLES!echoendpoint"),
    ]  # fmt: skip
    assert spcs.rows("SHOW GRANTS OF SERVICE ROLE with_roles!ALL_ENDPOINTS_USAGE") == []  # grants are no-ops here
    assert "does not exist" in error_of(spcs, "SHOW GRANTS TO SERVICE ROLE with_roles!nope").message


def test_set_and_unset_a_compute_pools_properties(spcs: LocalSPCS) -> None:
    spcs.sql("ALTER COMPUTE POOL tutorial_compute_pool SET AUTO_SUSPEND_SECS = 600 AUTO_RESUME = FALSE COMMENT = 'x'")
    spcs.sql("ALTER COMPUTE POOL tutorial_compute_pool UNSET AUTO_SUSPEND_SECS, AUTO_RESUME, COMMENT")

    pool = spcs.rows("SHOW COMPUTE POOLS")[0]
    assert (pool["auto_suspend_secs"], pool["auto_resume"], pool["comment"]) == (3600, True, None)
    assert spcs.value("CREATE COMPUTE POOL p2 MIN_NODES = 1 MAX_NODES = 1 INSTANCE_FAMILY = CPU_X64_XS") == (
        "Compute pool P2 successfully created."
    )


# --- jobs -------------------------------------------------------------------------------------------


def test_execute_job_service_waits_for_done_and_keeps_the_logs(spcs: LocalSPCS) -> None:
    assert spcs.value(EXECUTE_JOB) == "Job TUTORIAL_2_JOB_SERVICE completed successfully with status: DONE."

    [job] = spcs.rows("SHOW JOB SERVICES")
    assert (job["name"], job["status"], job["is_job"], job["is_async_job"]) == (
        "TUTORIAL_2_JOB_SERVICE",
        "DONE",
        True,
        False,
    )
    [container] = spcs.rows("SHOW SERVICE CONTAINERS IN SERVICE tutorial_2_job_service")
    assert (container["status"], container["last_exit_code"], container["instance_status"]) == ("DONE", 0, "SUCCEEDED")
    spcs.backend.running.clear()  # the containers are gone; the job's logs are kept
    assert "line 0" in spcs.value("SELECT SYSTEM$GET_SERVICE_LOGS('tutorial_2_job_service', 0, 'main')")
    [workload] = spcs.backend.started
    assert workload.job and workload.containers[0].args == [
        "--query=select current_time() as time,'hello'", "--result_table=results",
    ]  # fmt: skip


def test_a_failed_job_is_an_error_naming_the_job_failed_and_the_exit_code(tmp_path: Path) -> None:
    spcs = LocalSPCS(tmp_path, FakeBackend(exit_codes={"main": 3}))
    spcs.with_pool_and_images("my_job_image")

    error = error_of(
        spcs,
        f"EXECUTE JOB SERVICE IN COMPUTE POOL tutorial_compute_pool FROM SPECIFICATION $${JOB_SPEC}$$ NAME = failing",
    )
    assert "Job FAILING completed with status: FAILED. Container main exited with code 3." in error.message
    [container] = spcs.rows("SHOW SERVICE CONTAINERS IN SERVICE failing")
    assert (container["status"], container["last_exit_code"]) == ("FAILED", 3)


def test_execute_job_service_async_returns_at_once_and_needs_a_new_name(spcs: LocalSPCS) -> None:
    spcs.backend.job_seconds = 0.5
    assert spcs.value(EXECUTE_JOB + " ASYNC = TRUE") == "Job TUTORIAL_2_JOB_SERVICE successfully started."

    assert error_of(spcs, EXECUTE_JOB).code == "002002"
    spcs.sql("SELECT SYSTEM$WAIT_FOR_SERVICES(5, 'tutorial_2_job_service')")
    assert spcs.rows("SHOW SERVICES")[0]["is_async_job"] is True


def test_a_job_without_a_name_gets_one(spcs: LocalSPCS) -> None:
    spcs.sql(EXECUTE_JOB.replace("NAME=tutorial_2_job_service ", ""))

    assert spcs.rows("SHOW JOB SERVICES")[0]["name"].startswith("JOB_")


# --- service functions ------------------------------------------------------------------------------


def test_service_functions_are_created_shown_described_and_dropped(spcs: LocalSPCS) -> None:
    spcs.sql(CREATE_ECHO)
    create = ("CREATE OR REPLACE FUNCTION my_echo_udf (InputText varchar) RETURNS varchar SERVICE=echo_service "
              "ENDPOINT=echoendpoint MAX_BATCH_ROWS = 100 AS '/echo'")  # fmt: skip

    assert spcs.value(create) == "Function MY_ECHO_UDF successfully created."
    [function] = spcs.rows("SHOW USER FUNCTIONS LIKE 'MY_ECHO%'")
    assert function["arguments"] == "MY_ECHO_UDF(VARCHAR) RETURN VARCHAR"
    described = {row["property"]: row["value"] for row in spcs.rows("DESCRIBE FUNCTION my_echo_udf(varchar)")}
    assert (described["service"], described["endpoint"], described["path"], described["max_batch_rows"]) == (
        "TUTORIAL_DB.DATA_SCHEMA.ECHO_SERVICE", "echoendpoint", "/echo", 100,
    )  # fmt: skip
    assert spcs.value("DROP FUNCTION IF EXISTS my_echo_udf(varchar)") == "MY_ECHO_UDF successfully dropped."
    assert "already dropped" in spcs.value("DROP FUNCTION IF EXISTS my_echo_udf(varchar)")
    assert (
        "Function 'MY_ECHO_UDF(VARCHAR)' does not exist" in error_of(spcs, "DROP FUNCTION my_echo_udf(varchar)").message
    )


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ("SERVICE=nope ENDPOINT=echoendpoint", "Service 'NOPE' does not exist"),
        ("SERVICE=echo_service ENDPOINT=nope", "Service ECHO_SERVICE has no endpoint 'nope'"),
        ("ENDPOINT=echoendpoint SERVICE=echo_service ON_BATCH_FAILURE=maybe", "ON_BATCH_FAILURE must be"),
    ],
)
def test_service_function_errors(spcs: LocalSPCS, options: str, problem: str) -> None:
    spcs.sql(CREATE_ECHO)

    assert problem in error_of(spcs, f"CREATE FUNCTION f (x varchar) RETURNS varchar {options} AS '/echo'").message


# --- the catalog outlives the emulator ------------------------------------------------------------------


def test_after_a_restart_services_come_back_and_a_cut_off_job_is_failed(spcs: LocalSPCS) -> None:
    spcs.sql(CREATE_ECHO)
    spcs.sql(EXECUTE_JOB)
    spcs.backend.job_seconds = 60
    spcs.sql(EXECUTE_JOB.replace("tutorial_2_job_service", "cut_off") + " ASYNC=TRUE")
    spcs.sql("SELECT SYSTEM$WAIT_FOR_SERVICES(10, 'echo_service', 'cut_off')")  # both start in the background
    spcs.backend.running.clear()  # the emulator stopped: its containers went with it
    spcs.backend.running["ORPHAN.FROM.ELSEWHERE"] = spcs.backend.started[0]

    again = spcs.restarted()
    again.catalog.reconcile()
    again.sql("SELECT SYSTEM$WAIT_FOR_SERVICES(10, 'echo_service')")  # started again, in the background

    assert "ORPHAN.FROM.ELSEWHERE" in again.backend.removed
    statuses = {row["name"]: row["status"] for row in again.rows("SHOW SERVICES")}
    assert statuses == {"CUT_OFF": "FAILED", "ECHO_SERVICE": "RUNNING", "TUTORIAL_2_JOB_SERVICE": "DONE"}
    [cut_off] = again.rows("SHOW SERVICE CONTAINERS IN SERVICE cut_off")
    assert cut_off["message"] == "Interrupted: the local SPCS stopped while the job ran."


# --- statements that don't parse --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "problem"),
    [
        ("SHOW SERVICES; DROP SERVICE echo_service", "syntax error line 1 at position 15 unexpected 'DROP'"),
        ("SHOW SERVICE CONTAINERS IN SERVICE", "unexpected '<EOF>'"),
        ("CREATE SERVICE s IN COMPUTE POOL p FROM @st SPECIFICATION_FILE=", "unexpected '<EOF>'"),
        ("EXECUTE JOB SERVICE IN COMPUTE POOL p NAME=j", "unexpected '<EOF>'"),
        ("CREATE SERVICE s IN COMPUTE POOL p FROM SPECIFICATION_TEMPLATE 'x'", "unexpected '<EOF>'"),  # no USING
        ("SELECT SYSTEM$WAIT_FOR_SERVICES('soon', 'echo_service')", "takes a number of seconds"),
        ("SHOW SERVICES LIKE 'x", "syntax error line 1 at position 19 unexpected ''x'"),
    ],
)  # fmt: skip
def test_malformed_statements_are_syntax_errors(spcs: LocalSPCS, sql: str, problem: str) -> None:
    assert problem in error_of(spcs, sql).message
