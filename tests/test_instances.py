"""A service's instances and a job's replicas, as SPCS runs them: each instance a workload of its own, shown,
logged, scaled and upgraded; the statements on a catalog whose backend is a fake."""

import time
from pathlib import Path

import pytest

from spcs_local.emulator.catalog import ObjectName
from spcs_local.emulator.results import SnowflakeError

from .fakes import FakeBackend, LocalSPCS, wait_until

ROOT = Path(__file__).resolve().parent.parent
ECHO_SPEC = (ROOT / "echo-service" / "echo_spec.yaml").read_text()
JOB_SPEC = (ROOT / "tutorial-2-job" / "my_job_spec.yaml").read_text()
TWO_ECHOES = (
    f"CREATE SERVICE echo_service IN COMPUTE POOL tutorial_compute_pool FROM SPECIFICATION $${ECHO_SPEC}$$ "
    "MIN_INSTANCES=2 MAX_INSTANCES=2"
)


def two_replicas(name: str) -> str:
    return (f"EXECUTE JOB SERVICE IN COMPUTE POOL tutorial_compute_pool NAME = {name} "
            f"FROM SPECIFICATION $${JOB_SPEC}$$ REPLICAS = 2")  # fmt: skip


@pytest.fixture
def spcs(tmp_path: Path) -> LocalSPCS:
    return LocalSPCS(tmp_path).with_pool_and_images("my_echo_service_image", "my_job_image")


def error_of(spcs: LocalSPCS, sql: str) -> SnowflakeError:
    with pytest.raises(SnowflakeError) as caught:
        spcs.sql(sql)
    return caught.value


def test_min_instances_runs_that_many_instances_each_shown_and_logged(spcs: LocalSPCS) -> None:
    spcs.sql(TWO_ECHOES)
    assert spcs.value("SELECT SYSTEM$WAIT_FOR_SERVICES(10, 'echo_service')") == "OK"

    first, second = sorted(spcs.backend.started, key=lambda workload: workload.key)
    assert (first.key[-2:], second.key[-2:]) == ("/0", "/1")
    assert "instances.echo-service" in first.instance_hostnames and "echo-service" in second.hostnames
    instances = spcs.rows("SHOW SERVICE INSTANCES IN SERVICE echo_service")
    assert [(i["instance_id"], i["status"]) for i in instances] == [("0", "READY"), ("1", "READY")]
    containers = spcs.rows("SHOW SERVICE CONTAINERS IN SERVICE echo_service")
    assert [(c["instance_id"], c["container_name"], c["status"]) for c in containers] == [
        ("0", "echo", "READY"), ("1", "echo", "READY"),
    ]  # fmt: skip
    [service] = spcs.rows("SHOW SERVICES")
    assert (service["current_instances"], service["target_instances"], service["min_instances"]) == (2, 2, 2)
    assert spcs.value("SELECT SYSTEM$GET_SERVICE_LOGS('echo_service', 1, 'echo')").endswith("/1 echo line 2")
    assert "no instance 2" in error_of(spcs, "SELECT SYSTEM$GET_SERVICE_LOGS('echo_service', 2, 'echo')").message


def test_a_service_function_reaches_every_ready_instance(spcs: LocalSPCS) -> None:
    spcs.sql(TWO_ECHOES)
    spcs.sql("SELECT SYSTEM$WAIT_FOR_SERVICES(10, 'echo_service')")
    spcs.sql("CREATE FUNCTION my_echo_udf (t varchar) RETURNS varchar SERVICE=echo_service ENDPOINT=echoendpoint "
             "AS '/echo'")  # fmt: skip
    function = spcs.catalog.function_named(ObjectName("TUTORIAL_DB", "DATA_SCHEMA", "MY_ECHO_UDF"))

    assert spcs.catalog.function_urls(function) == ["http://127.0.0.1:48000", "http://127.0.0.1:49000"]
    spcs.backend.running.pop(spcs.catalog.services["TUTORIAL_DB.DATA_SCHEMA.ECHO_SERVICE"].instance_key(0))
    assert spcs.catalog.function_urls(function) == ["http://127.0.0.1:49000"]


def test_alter_service_scales_up_and_down(spcs: LocalSPCS) -> None:
    spcs.sql(TWO_ECHOES)
    spcs.sql("SELECT SYSTEM$WAIT_FOR_SERVICES(10, 'echo_service')")
    service = spcs.catalog.services["TUTORIAL_DB.DATA_SCHEMA.ECHO_SERVICE"]

    spcs.sql("ALTER SERVICE echo_service SET MIN_INSTANCES = 3 MAX_INSTANCES = 3")
    spcs.sql("SELECT SYSTEM$WAIT_FOR_SERVICES(10, 'echo_service')")
    assert len(spcs.rows("SHOW SERVICE INSTANCES IN SERVICE echo_service")) == 3
    spcs.sql("ALTER SERVICE echo_service SET MIN_INSTANCES = 1")
    spcs.sql("SELECT SYSTEM$WAIT_FOR_SERVICES(10, 'echo_service')")
    wait_until(lambda: set(spcs.backend.running) == {service.instance_key(0)})
    assert [i["instance_id"] for i in spcs.rows("SHOW SERVICE INSTANCES IN SERVICE echo_service")] == ["0"]
    assert "MAX_INSTANCES must be greater" in error_of(spcs, "ALTER SERVICE echo_service SET MIN_INSTANCES = 4").message
    assert (
        "MIN_READY_INSTANCES must be"
        in error_of(spcs, "ALTER SERVICE echo_service SET MIN_READY_INSTANCES = 2").message
    )


def test_a_service_is_running_once_min_ready_instances_are(tmp_path: Path) -> None:
    spcs = LocalSPCS(tmp_path, FakeBackend(pending_instances={1})).with_pool_and_images("my_echo_service_image")
    spcs.sql(TWO_ECHOES)
    ready_one = TWO_ECHOES.replace("SERVICE echo_service", "SERVICE one_is_enough")
    spcs.sql(ready_one.replace("MIN_INSTANCES=2", "MIN_INSTANCES=2 MIN_READY_INSTANCES=1"))
    wait_until(lambda: len(spcs.backend.started) == 4)

    statuses = {row["name"]: row["status"] for row in spcs.rows("SHOW SERVICES")}
    assert statuses == {"ECHO_SERVICE": "PENDING", "ONE_IS_ENOUGH": "RUNNING"}
    assert "Timed out" in error_of(spcs, "SELECT SYSTEM$WAIT_FOR_SERVICES(1, 'one_is_enough')").message  # not all


def test_an_upgrade_starts_every_instance_before_the_old_ones_stop(spcs: LocalSPCS) -> None:
    spcs.sql(TWO_ECHOES)
    spcs.sql("SELECT SYSTEM$WAIT_FOR_SERVICES(10, 'echo_service')")
    old = spcs.catalog.services["TUTORIAL_DB.DATA_SCHEMA.ECHO_SERVICE"]

    spcs.sql(f"ALTER SERVICE echo_service FROM SPECIFICATION $${ECHO_SPEC.replace('Bob', 'Alice')}$$")
    new = spcs.catalog.services["TUTORIAL_DB.DATA_SCHEMA.ECHO_SERVICE"]
    assert set(spcs.backend.running) == {new.instance_key(0), new.instance_key(1)}
    assert set(spcs.backend.removed[-2:]) == {old.instance_key(0), old.instance_key(1)}


def test_a_job_runs_its_replicas_each_told_its_index(spcs: LocalSPCS) -> None:
    assert spcs.value(two_replicas("replicated")) == "Job REPLICATED completed successfully with status: DONE."

    environments = sorted((w.containers[0].env for w in spcs.backend.started), key=lambda e: e["SNOWFLAKE_JOB_INDEX"])
    assert [(e["SNOWFLAKE_JOB_INDEX"], e["SNOWFLAKE_JOBS_COUNT"]) for e in environments] == [("0", "2"), ("1", "2")]
    containers = spcs.rows("SHOW SERVICE CONTAINERS IN SERVICE replicated")
    assert [(c["instance_id"], c["status"], c["instance_status"]) for c in containers] == [
        ("0", "DONE", "SUCCEEDED"), ("1", "DONE", "SUCCEEDED"),
    ]  # fmt: skip
    spcs.backend.running.clear()  # the containers are gone; each replica's logs are kept
    assert spcs.value("SELECT SYSTEM$GET_SERVICE_LOGS('replicated', 1, 'main')").endswith("/1 main line 2")
    assert spcs.value("SELECT SYSTEM$GET_SERVICE_LOGS('replicated', 0, 'main')").endswith("/0 main line 2")


def test_a_job_fails_when_one_replica_fails(tmp_path: Path) -> None:
    spcs = LocalSPCS(tmp_path, FakeBackend(exit_codes={"main/1": 4})).with_pool_and_images("my_job_image")

    assert "exited with code 4" in error_of(spcs, two_replicas("half_failed")).message
    [job] = spcs.rows("SHOW JOB SERVICES")
    assert job["status"] == "FAILED"
    statuses = [i["status"] for i in spcs.rows("SHOW SERVICE INSTANCES IN SERVICE half_failed")]
    assert statuses == ["SUCCEEDED", "FAILED"]


def test_after_a_restart_each_missing_instance_comes_back(spcs: LocalSPCS) -> None:
    spcs.sql(TWO_ECHOES)
    spcs.sql("SELECT SYSTEM$WAIT_FOR_SERVICES(10, 'echo_service')")
    service = spcs.catalog.services["TUTORIAL_DB.DATA_SCHEMA.ECHO_SERVICE"]
    spcs.backend.running.pop(service.instance_key(1))
    spcs.backend.running["TUTORIAL_DB.DATA_SCHEMA.ECHO_SERVICE#old/0"] = spcs.backend.started[0]

    again = spcs.restarted()
    again.catalog.reconcile()
    wait_until(lambda: set(spcs.backend.running) == {service.instance_key(0), service.instance_key(1)})


def test_an_idle_service_suspends_and_a_function_call_resumes_it(spcs: LocalSPCS) -> None:
    spcs.sql(TWO_ECHOES + " AUTO_SUSPEND_SECS = 60")
    spcs.sql("CREATE FUNCTION my_echo_udf (t varchar) RETURNS varchar SERVICE=echo_service ENDPOINT=echoendpoint "
             "AS '/echo'")  # fmt: skip
    spcs.sql("SELECT SYSTEM$WAIT_FOR_SERVICES(10, 'echo_service')")
    function = spcs.catalog.function_named(ObjectName("TUTORIAL_DB", "DATA_SCHEMA", "MY_ECHO_UDF"))
    spcs.catalog.function_urls(function)  # a call: the service is in use now
    started = time.monotonic()

    spcs.catalog.suspend_idle(at=started + 30)
    assert spcs.rows("SHOW SERVICES")[0]["status"] == "RUNNING"
    spcs.catalog.suspend_idle(at=started + 61)
    assert spcs.rows("SHOW SERVICES")[0]["status"] == "SUSPENDED" and spcs.backend.running == {}

    assert len(spcs.catalog.function_urls(function)) == 2  # the call waits for both instances to be READY again
    assert spcs.rows("SHOW SERVICES")[0]["status"] == "RUNNING"
    spcs.sql("ALTER SERVICE echo_service SET AUTO_RESUME = FALSE")
    spcs.sql("ALTER SERVICE echo_service SUSPEND")
    with pytest.raises(SnowflakeError, match="AUTO_RESUME = FALSE: resume it first"):
        spcs.catalog.function_urls(function)


def test_after_a_restart_a_service_kept_without_ingress_ports_gets_them(spcs: LocalSPCS) -> None:
    spcs.sql(TWO_ECHOES)
    spcs.catalog.services["TUTORIAL_DB.DATA_SCHEMA.ECHO_SERVICE"].ingress = {}  # as an earlier version kept it
    spcs.catalog.save()

    again = spcs.restarted()
    again.catalog.reconcile()

    assert list(again.catalog.services["TUTORIAL_DB.DATA_SCHEMA.ECHO_SERVICE"].ingress) == ["echoendpoint"]
