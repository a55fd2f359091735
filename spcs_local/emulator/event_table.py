"""The account's event table, where SPCS puts what a spec's `logExporters` exports and its platform events:
a table with Snowflake's event-table columns, in fakesnow, written by the local SPCS, and read by SQL such as
`snow spcs service events | metrics` sends. Those queries compare VARIANT paths with strings, which DuckDB
reads as JSON: `readable` makes each path text first, as Snowflake compares it."""

import json
import re
from typing import Any

import sqlglot
from sqlglot import exp

from spcs_local.emulator.catalog.objects import ObjectName, Record
from spcs_local.emulator.fakesnow_fixes import quoted, run_global, shared_connection

COLUMNS = (
    "TIMESTAMP TIMESTAMP_NTZ, START_TIMESTAMP TIMESTAMP_NTZ, OBSERVED_TIMESTAMP TIMESTAMP_NTZ, TRACE OBJECT, "
    "RESOURCE OBJECT, RESOURCE_ATTRIBUTES OBJECT, SCOPE OBJECT, SCOPE_ATTRIBUTES OBJECT, RECORD_TYPE VARCHAR, "
    "RECORD OBJECT, RECORD_ATTRIBUTES OBJECT, VALUE VARIANT, EXEMPLARS ARRAY"
)
PLATFORM = {"name": "snow.spcs.platform"}


def create(name: ObjectName, if_not_exists: bool = True) -> None:
    """CREATE EVENT TABLE: its database and schema too, as the account's default one needs."""
    with shared_connection() as cursor:
        cursor.execute(f"CREATE DATABASE IF NOT EXISTS {quoted(name.database)}")
        cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted(name.database)}.{quoted(name.schema)}")
        exists = "IF NOT EXISTS " if if_not_exists else ""
        cursor.execute(f"CREATE TABLE {exists}{full(name)} ({COLUMNS})")


def write(name: ObjectName, records: list[Record]) -> None:
    """The records as rows of the event table."""
    marks = ", ".join(["?"] * 13)
    for record in records:
        run_global(f"INSERT INTO {full(name)} VALUES ({marks})", row(record))


def row(record: Record) -> list[Any]:
    at = record.at.replace(tzinfo=None)
    resource = {
        "snow.database.name": record.database, "snow.schema.name": record.schema, "snow.service.name": record.service,
        "snow.service.instance": str(record.instance), "snow.service.container.name": record.container,
        "snow.service.container.instance": str(record.instance), "snow.compute_pool.name": record.compute_pool,
    }  # fmt: skip
    if record.kind == "METRIC":
        body = {"metric": {"name": record.name, "unit": record.unit}, "metric_type": "gauge"}
    else:
        body = {"severity_text": record.severity} | ({"name": record.name} if record.name else {})
    value = json.dumps(record.value)
    scope = PLATFORM if record.kind in ("EVENT", "METRIC") else {}
    return [at, None, at, None, None, json.dumps(resource), json.dumps(scope),
            None, record.kind, json.dumps(body), json.dumps({}), value, None]  # fmt: skip


def full(name: ObjectName) -> str:
    return ".".join(map(quoted, (name.database, name.schema, name.name)))


def reads(sql: str, name: str) -> bool:
    """Whether a statement names the event table (`db.schema.table`, quoted or not)."""
    return name.upper() in re.sub(r'["\s]', "", sql).upper()


def readable(sql: str) -> str:
    """The statement with each VARIANT path (`col:"a.b"`, `col['a']['b']`) read as text, as Snowflake compares a
    VARIANT with a string."""
    try:
        tree = sqlglot.parse_one(sql, read="snowflake")
    except sqlglot.errors.ParseError:
        return sql  # fakesnow says what is wrong with it
    paths = (exp.Bracket, exp.JSONExtract)
    for node in list(tree.find_all(*paths)):
        compared = node.find_ancestor(exp.Where, exp.Having, exp.Window, exp.Order, exp.Join) is not None
        if compared and not isinstance(node.parent, (*paths, exp.Cast)):  # what a query selects stays VARIANT
            node.replace(exp.Cast(this=node.copy(), to=exp.DataType.build("VARCHAR")))
    return tree.sql(dialect="snowflake")
