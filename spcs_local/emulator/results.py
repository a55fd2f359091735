"""What a statement answers: a result set, or a Snowflake error (code, SQL state and message)."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

ColumnType = Literal["text", "fixed", "boolean", "timestamp_ltz"]


class SnowflakeError(Exception):
    """An error as Snowflake reports it; clients show `code (sqlstate): message`."""

    def __init__(self, message: str, code: str = "002003", sqlstate: str = "02000") -> None:
        super().__init__(message)
        self.message, self.code, self.sqlstate = message, code, sqlstate


def does_not_exist(kind: str, name: str) -> SnowflakeError:
    return SnowflakeError(f"SQL compilation error:\n{kind} '{name}' does not exist or not authorized.")


def already_exists(name: str) -> SnowflakeError:
    return SnowflakeError(f"SQL compilation error:\nObject '{name}' already exists.", "002002", "42710")


def put_new(table: dict[str, Any], key: str, obj: Any, name: str, or_replace: bool, if_not_exists: bool) -> str | None:
    """CREATE's rules for a table of objects: with the key taken, IF NOT EXISTS answers (returned) and only
    OR REPLACE puts `obj` in its place; otherwise `obj` is put and None returned."""
    if key in table:
        if if_not_exists:
            return f"{name} already exists, statement succeeded."
        if not or_replace:
            raise already_exists(name)
    table[key] = obj
    return None


def syntax_error(line: int, position: int, near: str) -> SnowflakeError:
    message = f"SQL compilation error:\nsyntax error line {line} at position {position} unexpected '{near}'."
    return SnowflakeError(message, "001003", "42000")


def invalid(message: str) -> SnowflakeError:
    """A statement that parses but can't be carried out as written (a bad spec, a bad value)."""
    return SnowflakeError(message, "395018", "22023")


def unsupported(what: str) -> SnowflakeError:
    return SnowflakeError(f"Unsupported feature '{what}' in the local SPCS.", "000002", "0A000")


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType = "text"


@dataclass
class Result:
    """A result set: typed columns and rows of Python values (str, int, bool, datetime or None)."""

    columns: list[Column]
    rows: list[list[Any]] = field(default_factory=list)

    @classmethod
    def status(cls, message: str) -> "Result":
        """The one-row answer of a DDL statement, as Snowflake gives it."""
        return cls([Column("status")], [[message]])


def json_value(value: Any) -> str | None:
    """A value as Snowflake's JSON result format carries it: text, or epoch seconds for timestamps."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, datetime):
        return f"{value.timestamp():.9f}"
    return str(value)
