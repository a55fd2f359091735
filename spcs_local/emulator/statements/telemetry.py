"""The account's event table as statements: SHOW PARAMETERS ... IN ACCOUNT, ALTER ACCOUNT SET | UNSET EVENT_TABLE,
and CREATE EVENT TABLE."""

from typing import ClassVar

from spcs_local.emulator.catalog import Catalog
from spcs_local.emulator.catalog.telemetry import ACCOUNT_PARAMETERS
from spcs_local.emulator.results import Column, Result
from spcs_local.emulator.statements.parser import NOOP, Context, Parser, Run, matches, resolve


class TelemetryStatements:
    """Part of Statements (its `catalog`): the event table's statements."""

    catalog: Catalog
    PARAMETER_COLUMNS: ClassVar[list[Column]] = [
        Column("key"), Column("value"), Column("default"), Column("level"), Column("description"), Column("type"),
    ]  # fmt: skip

    def parse_show_parameters(self, parser: Parser) -> Run | None:
        """SHOW PARAMETERS [LIKE '...'] IN ACCOUNT (other scopes are fakesnow's)."""
        pattern = parser.next().value if parser.accept("LIKE") else None
        if not parser.accept("IN", "ACCOUNT"):
            return None
        parser.end()
        return lambda context: self.show_parameters(pattern)

    def show_parameters(self, pattern: str | None) -> Result:
        rows = []
        for key, default in ACCOUNT_PARAMETERS.items():
            if matches(pattern, key):
                value = self.catalog.account.get(key, default)
                rows.append([key, value, default, "ACCOUNT" if key in self.catalog.account else "",
                             "The account's event table.", "STRING"])  # fmt: skip
        return Result(self.PARAMETER_COLUMNS, rows)

    def parse_alter_account(self, parser: Parser) -> Run:
        """ALTER ACCOUNT SET EVENT_TABLE = db.schema.table | UNSET EVENT_TABLE."""
        if parser.accept("UNSET"):
            name = parser.next().value
            parser.end()
            return lambda context: self.altered(name, None)
        parser.expect("SET")
        name = parser.next().value
        parser.expect_punct("=")
        value = ".".join(parser.name_parts())
        parser.end()
        return lambda context: self.altered(name, value)

    def altered(self, name: str, value: str | None) -> Result:
        self.catalog.set_account(name, value)
        return Result.status(NOOP)

    def parse_create_event_table(self, parser: Parser, or_replace: bool) -> Run:
        if_not_exists = parser.accept("IF", "NOT", "EXISTS")
        parts = parser.name_parts()
        parser.skip_rest()  # CHANGE_TRACKING, COMMENT, ...: kept by none here

        def create(context: Context) -> Result:
            name = resolve(parts, context)
            self.catalog.create_event_table(name, if_not_exists and not or_replace)
            return Result.status(f"Table {name.name} successfully created.")

        return create
