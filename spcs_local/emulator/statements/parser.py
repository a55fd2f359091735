"""Tokens, names and option lists of SPCS SQL, and what every family of statements shares: the session's context,
names resolved in it, LIKE patterns and IN scopes."""

import itertools
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from spcs_local.emulator.catalog import ObjectName
from spcs_local.emulator.results import Result, SnowflakeError, invalid, syntax_error


@dataclass
class Context:
    """A session's context, as the statements see it. USE ROLE and USE WAREHOUSE change it."""

    user: str
    role: str
    warehouse: str | None
    database: str | None
    schema: str | None
    cancelled: threading.Event = field(default_factory=threading.Event)  # set when the query is cancelled


class Storage(Protocol):
    """Databases, schemas and stages, as the SQL engine underneath keeps them."""

    def read(self, stage: ObjectName, path: str) -> str: ...

    def read_folder(self, stage: ObjectName, folder: str) -> dict[str, bytes]: ...

    def drop_stage(self, stage: ObjectName) -> bool: ...

    def drop_schema(self, database: str, schema: str) -> bool: ...

    def drop_database(self, database: str) -> bool: ...


Run = Callable[[Context], Result]
T = TypeVar("T")

# --- tokens ---------------------------------------------------------------------------------------

TOKEN = re.compile(
    r"""(?P<space>\s+|--[^\n]*|//[^\n]*|/\*.*?\*/)
    |(?P<dollar>\$\$.*?\$\$)
    |(?P<string>'(?:[^'\\]|\\.|'')*')
    |(?P<quoted>"(?:[^"]|"")*")
    |(?P<number>\d+(?:\.\d+)?)
    |(?P<var>\$\w+)
    |(?P<word>[A-Za-z_][A-Za-z0-9_$]*)
    |(?P<punct>=>|[(),.=;@*/~<>+\-:!%&|^\[\]{}?])""",
    re.S | re.X,
)
ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "b": "\b", "f": "\f"}


@dataclass(frozen=True)
class Token:
    kind: str  # word, quoted, string, dollar, number, var, punct or end
    text: str
    value: str  # a string's or a quoted name's contents; a word in uppercase
    line: int
    position: int  # in its line
    start: int  # in the statement


def tokens(sql: str) -> Iterator[Token]:
    """The statement's tokens, one at a time: most statements are known by their first words."""
    at, line, line_start = 0, 1, 0
    while at < len(sql):
        match = TOKEN.match(sql, at)
        if not match:
            raise syntax_error(line, at - line_start, sql[at : at + 10])
        kind, text = match.lastgroup or "", match.group()
        if kind != "space":
            yield Token(kind, text, decode(kind, text), line, at - line_start, at)
        if "\n" in text:
            line, line_start = line + text.count("\n"), at + text.rindex("\n") + 1
        at = match.end()
    yield Token("end", "", "", line, at - line_start, at)


def statement_count(sql: str) -> int:
    """How many statements the text holds: a `;` outside strings, names and comments ends one, and an empty
    one (after a trailing `;`) doesn't count. Characters the tokenizer doesn't know count as text."""
    count, pending, at = 0, False, 0
    while at < len(sql):
        match = TOKEN.match(sql, at)
        kind, text = (match.lastgroup, match.group()) if match else ("other", sql[at])
        if text == ";":
            count, pending = count + pending, False
        elif kind != "space":
            pending = True
        at += len(text)
    return count + pending


def decode(kind: str, text: str) -> str:
    if kind == "string":
        return re.sub(r"''|\\(.)", lambda m: "'" if m[0] == "''" else ESCAPES.get(m[1], m[1]), text[1:-1], flags=re.S)
    if kind == "quoted":
        return text[1:-1].replace('""', '"')
    if kind == "dollar":
        return text[2:-2]
    if kind == "word":
        return text.upper()
    return text


class Parser:
    def __init__(self, sql: str, variables: dict[str, str] | None = None) -> None:
        self.stream, self.tokens, self.at = tokens(sql), [], 0
        self.variables = variables or {}  # the session's, by name in uppercase: their values as SQL literals

    def peek(self, ahead: int = 0) -> Token:
        while len(self.tokens) <= self.at + ahead and (not self.tokens or self.tokens[-1].kind != "end"):
            self.tokens.append(next(self.stream))
        return self.tokens[min(self.at + ahead, len(self.tokens) - 1)]

    def next(self) -> Token:
        token = self.peek()
        if token.kind != "end":
            self.at += 1
        return token

    def rest(self) -> list[Token]:
        self.tokens.extend(self.stream)
        return self.tokens[self.at :]

    def at_words(self, *words: str) -> bool:
        return all(self.peek(i).kind == "word" and self.peek(i).value == word for i, word in enumerate(words))

    def ahead(self, word: str, punct: str) -> bool:
        """Whether `word` followed by `punct` comes anywhere further on."""
        return any(t.kind == "word" and t.value == word and n.text == punct for t, n in itertools.pairwise(self.rest()))

    def accept(self, *words: str) -> bool:
        if self.at_words(*words):
            self.at += len(words)
            return True
        return False

    def expect(self, *words: str) -> None:
        for word in words:
            if not self.accept(word):
                raise self.error()

    def accept_punct(self, punct: str) -> bool:
        if self.peek().kind == "punct" and self.peek().text == punct:
            self.at += 1
            return True
        return False

    def expect_punct(self, punct: str) -> None:
        if not self.accept_punct(punct):
            raise self.error()

    def error(self) -> SnowflakeError:
        token = self.peek()
        return syntax_error(token.line, token.position, token.text or "<EOF>")

    def end(self) -> None:
        """The statement must end here; a second statement is refused (MULTI_STATEMENT_COUNT = 1)."""
        self.accept_punct(";")
        if self.peek().kind != "end":
            raise self.error()

    def skip_rest(self) -> None:
        self.at = len(self.rest()) + self.at - 1

    def name_parts(self) -> list[str]:
        """A possibly qualified name, or IDENTIFIER('db.schema.name') or IDENTIFIER($variable)."""
        if self.at_words("IDENTIFIER") and self.peek(1).text == "(":
            self.at += 2
            token = self.next()
            if token.kind == "var":
                text = self.variable(token)
            elif token.kind == "string":
                text = token.value
            else:
                raise self.error()
            self.expect_punct(")")
            return [t.value for t in Parser(text).name_tokens()]
        return [t.value for t in self.name_tokens()]

    def variable(self, token: Token) -> str:
        """A session variable (SET name = 'value') that holds a string."""
        name = token.text[1:].upper()
        if name not in self.variables:
            raise SnowflakeError(f"Session variable '${name}' does not exist", "002211", "02000")
        value = next(tokens(self.variables[name]))
        if value.kind != "string":
            raise invalid(
                f"SQL compilation error:\nSession variable '${name}' holds no name: IDENTIFIER() takes a string."
            )
        return value.value

    def name_tokens(self) -> list[Token]:
        parts = [self.identifier()]
        while self.accept_punct("."):
            parts.append(self.identifier())
        if len(parts) > 3:
            raise self.error()
        return parts

    def identifier(self) -> Token:
        token = self.peek()
        if token.kind not in ("word", "quoted"):
            raise self.error()
        return self.next()

    def string(self) -> str:
        if self.peek().kind not in ("string", "dollar"):
            raise self.error()
        return self.next().value

    def value(self) -> Any:
        """An option's value: a number, a string, TRUE/FALSE, a name, or a parenthesized list."""
        token = self.peek()
        if token.kind in ("word", "quoted") and token.value not in ("TRUE", "FALSE"):
            return ".".join(self.name_parts())
        if token.text == "(":
            return self.listed(self.value)
        if token.kind not in ("number", "string", "dollar", "word"):
            raise self.error()
        self.next()
        if token.kind == "number":
            return float(token.text) if "." in token.text else int(token.text)
        if token.kind == "word":
            return token.value == "TRUE"
        return token.value

    def options(self, stop: tuple[str, ...] = ()) -> dict[str, Any]:
        """`KEY = value` pairs up to the end (or to a word in `stop`); TAG (...) is accepted and ignored."""
        options: dict[str, Any] = {}
        self.accept("WITH")
        while self.peek().kind == "word" and self.peek().value not in stop:
            if self.accept("TAG"):
                self.value()
                continue
            key = self.next().value
            self.expect_punct("=")
            options[key] = self.value()
        return options

    def arguments(self) -> list[Any]:
        """A call's literal arguments: numbers, strings, TRUE/FALSE, NULL."""
        return self.listed(lambda: None if self.accept("NULL") else self.value())

    def listed(self, item: Callable[[], T]) -> list[T]:
        """`(item, item, ...)`, or `()`."""
        self.expect_punct("(")
        items: list[T] = []
        if self.accept_punct(")"):
            return items
        while True:
            items.append(item())
            if self.accept_punct(")"):
                return items
            self.expect_punct(",")

    def data_type(self) -> str:
        """VARCHAR, NUMBER(38,0), TIMESTAMP_NTZ(9), ... as written, in uppercase."""
        kind = self.identifier().value
        if self.peek().text == "(":
            kind += f"({','.join(self.listed(lambda: self.next().text))})"
        return kind


NOOP = "Statement executed successfully."


def resolve(parts: list[str], context: Context) -> ObjectName:
    """A name in the session's database and schema, unless qualified."""
    database = parts[-3] if len(parts) == 3 else context.database
    schema = parts[-2] if len(parts) >= 2 else context.schema
    if not database or not schema:
        raise SnowflakeError(
            "Cannot perform operation. This session does not have a current "
            f"{'database' if not database else 'schema'}. Call 'USE {'DATABASE' if not database else 'SCHEMA'}', "
            "or use a qualified name.",
            "090105",
            "22000",
        )
    return ObjectName(database, schema, parts[-1])


def name_in(text: Any) -> list[str]:
    """A name given as a string ('echo_service', '"Quoted"', 'db.schema.name'), read as SQL reads names."""
    parser = Parser(str(text))
    parts = parser.name_parts()
    parser.end()
    return parts


def matches(pattern: str | None, name: str) -> bool:
    """SQL LIKE, case-insensitive, with % and _ and backslash escapes, as SHOW ... LIKE uses it."""
    if pattern is None:
        return True
    regex = "".join(
        ".*" if part == "%" else "." if part == "_" else re.escape(part[-1])
        for part in re.findall(r"\\.|.", pattern, re.S)
    )
    return re.fullmatch(regex, name, re.I | re.S) is not None


def in_scope(scope: tuple[str, list[str]] | None, context: Context, database: str, schema: str) -> bool:
    """IN ACCOUNT | DATABASE [d] | SCHEMA [s]; without IN, the current database (or the account without one)."""
    if scope is None:
        return context.database is None or database == context.database
    kind, parts = scope
    if kind == "ACCOUNT":
        return True
    if kind == "DATABASE":
        return database == (parts[-1] if parts else context.database)
    wanted_schema = parts[-1] if parts else context.schema
    wanted_database = parts[-2] if len(parts) == 2 else context.database
    return (database, schema) == (wanted_database, wanted_schema)


def sql_literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if value is None:
        return "NULL"
    return str(value).upper() if isinstance(value, bool) else str(value)
