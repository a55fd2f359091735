"""The account's event table, with the real connector and fakesnow underneath: SHOW PARAMETERS names it, a job's
platform events and the logs its spec exports land in it (and stay after the job's containers are gone), and
the queries `snow spcs service events | logs` send read them. The containers run on a fake backend."""

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import snowflake.connector

from spcs_local.emulator import client_env, connection_params, event_table
from spcs_local.emulator.results import SnowflakeError

from .fakes import FakeBackend, LocalSPCS, serving

JOB = """spec:
  containers:
  - name: main
    image: /tutorial_db/data_schema/tutorial_repository/my_job_image:latest
  logExporters:
    eventTableConfig:
      logLevel: {level}
"""
# What `snow spcs service events` sends (snowflake-cli's get_events), for one service and container.
EVENTS = """select * from (select * from {table} where (
    upper(resource_attributes:"snow.service.name") = upper('{service}')
    and (resource_attributes:"snow.service.instance" = '0'
         OR resource_attributes:"snow.service.container.instance" = '0')
    and resource_attributes:"snow.service.container.name" = 'main')
  and record_type = 'EVENT' and scope['name'] = 'snow.spcs.platform' order by timestamp desc) order by timestamp asc"""


LOGS = """select value from snowflake.telemetry.events where record_type = 'LOG'
  and resource_attributes:"snow.service.name" = '{service}' order by timestamp"""
MONITORED = """spec:
  containers:
  - name: echo
    image: /tutorial_db/data_schema/tutorial_repository/my_echo_service_image:latest
  platformMonitor:
    metricConfig:
      groups: [system, status]
"""
# What `snow spcs service metrics` sends (snowflake-cli's get_latest_metrics): each metric's latest value.
LATEST_METRICS = """with rankedmetrics as (select *, row_number() over (
    partition by COALESCE(record['name'], record['metric']['name']) order by timestamp desc) as rank
  from snowflake.telemetry.events
  where record_type = 'METRIC' and scope['name'] = 'snow.spcs.platform'
    and upper(resource_attributes:"snow.service.name") = upper('monitored')
    and (resource_attributes:"snow.service.instance" = '0'
         OR resource_attributes:"snow.service.container.instance" = '0')
    and resource_attributes:"snow.service.container.name" = 'echo'
    and timestamp > dateadd('hour', -1, current_timestamp))
select * from rankedmetrics where rank = 1 order by timestamp desc"""


@pytest.fixture
def session(tmp_path: Path) -> Iterator[tuple[LocalSPCS, snowflake.connector.SnowflakeConnection]]:
    spcs = LocalSPCS(tmp_path / "spcs", FakeBackend(exit_codes={"main/1": 2}))
    spcs.with_pool_and_images("my_job_image", "my_echo_service_image")
    with serving(spcs, tmp_path / "snowflake") as base:
        spcs.catalog.create_event_table, spcs.catalog.record = event_table.create, event_table.write
        event_table.create(spcs.catalog.event_table)
        with snowflake.connector.connect(**connection_params(client_env(int(base.rsplit(":", 1)[1])))) as connection:
            yield spcs, connection


def run_job(spcs: LocalSPCS, name: str, level: str, replicas: int = 1) -> None:
    # A replica that fails fails the job (an error): its events are what a test reads.
    with contextlib.suppress(SnowflakeError):
        spcs.sql(f"EXECUTE JOB SERVICE IN COMPUTE POOL tutorial_compute_pool NAME = {name} "
                 f"FROM SPECIFICATION $${JOB.format(level=level)}$$ REPLICAS = {replicas}")  # fmt: skip


def test_show_parameters_names_the_accounts_event_table_and_alter_account_changes_it(session) -> None:
    _, connection = session
    cursor = connection.cursor()

    [(key, value, *_)] = cursor.execute("show parameters like 'event_table' in account").fetchall()
    cursor.execute("CREATE EVENT TABLE IF NOT EXISTS tutorial_db.data_schema.my_events")
    cursor.execute("ALTER ACCOUNT SET EVENT_TABLE = tutorial_db.data_schema.my_events")
    [(_, changed, *_)] = cursor.execute("show parameters like 'event_table' in account").fetchall()

    assert (key, value, changed) == ("EVENT_TABLE", "SNOWFLAKE.TELEMETRY.EVENTS", "TUTORIAL_DB.DATA_SCHEMA.MY_EVENTS")
    assert cursor.execute("select count(*) from tutorial_db.data_schema.my_events").fetchone() == (0,)


def test_a_jobs_events_and_exported_logs_outlive_its_containers(session) -> None:
    spcs, connection = session
    run_job(spcs, "exported", "INFO")
    spcs.backend.running.clear()  # the containers are gone

    cursor = connection.cursor()
    events = cursor.execute(EVENTS.format(table="snowflake.telemetry.events", service="exported")).fetchall()
    logs = cursor.execute(LOGS.format(service="EXPORTED")).fetchall()

    statuses = [json.loads(row[11])["status"] for row in events]
    assert statuses == ["DONE"] and json.loads(events[0][9])["name"] == "CONTAINER.STATUS_CHANGE"
    assert [json.loads(row[0]) for row in logs][-1].endswith("main line 2")


def test_nothing_is_exported_under_none_and_a_failed_replica_is_an_error_event(session) -> None:
    spcs, connection = session
    run_job(spcs, "quiet", "NONE", replicas=2)

    cursor = connection.cursor()
    logs = cursor.execute("select count(*) from snowflake.telemetry.events where record_type = 'LOG' "
                          "and resource_attributes:\"snow.service.name\" = 'QUIET'").fetchone()  # fmt: skip
    failed = cursor.execute("select record:severity_text from snowflake.telemetry.events where record_type = 'EVENT' "
                            "and resource_attributes:\"snow.service.instance\" = '1' "
                            "and resource_attributes:\"snow.service.name\" = 'QUIET'").fetchall()  # fmt: skip

    assert logs == (0,) and [json.loads(row[0]) for row in failed] == ["ERROR"]


def test_a_service_monitored_by_platform_monitor_has_its_latest_metrics_read_as_snow_reads_them(session) -> None:
    spcs, connection = session
    spcs.sql(f"CREATE SERVICE monitored IN COMPUTE POOL tutorial_compute_pool FROM SPECIFICATION $${MONITORED}$$")
    spcs.sql("SELECT SYSTEM$WAIT_FOR_SERVICES(10, 'monitored')")
    spcs.catalog.observe()  # memory and restarts; CPU from the second look on, over the time between them
    time.sleep(0.5)
    spcs.catalog.observe()

    rows = connection.cursor().execute(LATEST_METRICS).fetchall()

    latest = {json.loads(row[9])["metric"]["name"]: json.loads(row[11]) for row in rows}
    assert latest.keys() == {"container.cpu.usage", "container.memory.usage", "container.restarts"}
    assert latest["container.memory.usage"] == 64 * 2**20 and latest["container.restarts"] == 0
    assert 0 < latest["container.cpu.usage"] <= 1.0  # half a CPU second over at least half a second
