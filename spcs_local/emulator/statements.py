"""The statement layer: SPCS SQL turned into calls on the catalog, and their answers as result sets.

`Statements.parse(sql)` returns what to run for the statements the local SPCS answers itself (SPCS
objects, service functions, SYSTEM$ functions, and the no-ops a single machine has nothing to
enforce for: roles, grants, warehouses, client session settings), or None for any other statement,
which fakesnow runs. It knows nothing of Docker.
"""

import itertools
import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar

import yaml

from spcs_local.emulator.access import Integration, NetworkRule
from spcs_local.emulator.catalog import Catalog, ObjectName, ServiceFunction, ServiceView, already_dropped, listed
from spcs_local.emulator.results import Column, Result, SnowflakeError, invalid, syntax_error, unsupported


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


# --- the statements -----------------------------------------------------------------------------

NOOP = "Statement executed successfully."
CLIENT_SETTINGS = re.compile(r"^(PYTHON_CONNECTOR_|CLIENT_|JDBC_|ODBC_|QUERY_TAG$|ABORT_DETACHED_QUERY$)")
# DuckDB's own statements, which Snowflake doesn't have: files, extensions and settings of the engine underneath.
ENGINE_STATEMENTS = {"ATTACH", "DETACH", "INSTALL", "LOAD", "PRAGMA", "EXPORT", "IMPORT", "CHECKPOINT", "FORCE",
                     "VACUUM", "RESET"}  # fmt: skip
SYSTEM_FUNCTIONS = (
    "SYSTEM$WAIT_FOR_SERVICES",
    "SYSTEM$GET_SERVICE_LOGS",
    "SYSTEM$GET_SERVICE_STATUS",
    "SYSTEM$GET_COMPUTE_POOL_STATUS",
)


class Statements:
    def __init__(self, catalog: Catalog, stages: Storage) -> None:
        self.catalog, self.stages = catalog, stages
        # By the statement's first word; each parser returns None for a statement fakesnow runs.
        self.parsers: dict[str, Callable[[Parser], Run | None]] = {
            "GRANT": self.parse_grant,
            "REVOKE": self.parse_grant,
            "USE": self.parse_use,
            "CREATE": self.parse_create,
            "ALTER": self.parse_alter,
            "DROP": self.parse_drop,
            "EXECUTE": self.parse_execute,
            "SHOW": self.parse_show,
            "DESCRIBE": self.parse_describe,
            "DESC": self.parse_describe,
            "SELECT": self.parse_select,
            "CALL": self.parse_call,
        }

    def service_function_calls(
        self, sql: str, context: Context, query_id: str
    ) -> tuple[str, dict[str, ServiceFunction]]:
        """The statement for fakesnow, each call of a service function given a call id as its last argument
        (and its qualification dropped): the call id tells the running function whose call it is, whichever
        of DuckDB's threads runs it. Returns the statement and the functions by call id."""
        names = {function.name for function in self.catalog.functions.values()}
        if not any(name in sql.upper() for name in names):
            return sql, {}
        try:
            found = list(tokens(sql))
        except SnowflakeError:
            return sql, {}  # fakesnow will say what is wrong with it
        edits: list[tuple[int, int, str]] = []
        calls: dict[str, ServiceFunction] = {}
        for index, token in enumerate(found[:-1]):
            if token.kind != "word" or token.value not in names or found[index + 1].text != "(":
                continue
            first = index
            while first >= 2 and found[first - 1].text == "." and found[first - 2].kind in ("word", "quoted"):
                first -= 2
            parts = [t.value for t in found[first : index + 1 : 2]]
            try:
                function = self.catalog.function_named(resolve(parts, context))
            except SnowflakeError:
                continue
            if function is None:
                continue
            close, depth = index + 1, 0
            for close in range(index + 1, len(found)):
                depth += {"(": 1, ")": -1}.get(found[close].text, 0)
                if depth == 0:
                    break
            call_id = f"{query_id}:{len(calls)}"
            calls[call_id] = function
            empty = found[close - 1].text == "("
            edits += [(found[first].start, token.start, ""), (found[close].start, found[close].start,
                      f"{'' if empty else ', '}'{call_id}'")]  # fmt: skip
        for start, end, text in sorted(edits, reverse=True):
            sql = sql[:start] + text + sql[end:]
        return sql, calls

    def parse(self, sql: str, variables: dict[str, str] | None = None) -> Run | None:
        """What to run for a statement the local SPCS answers; None for one fakesnow runs. `variables` are the
        session's, for IDENTIFIER($name)."""
        parser = Parser(sql, variables)
        first = parser.peek()
        if first.kind == "word" and first.value in ENGINE_STATEMENTS:
            raise parser.error()
        parse = self.parsers.get(first.value) if first.kind == "word" else None
        return parse(parser) if parse else None

    # --- statements with nothing to enforce on one machine ------------------------------------

    def parse_grant(self, parser: Parser) -> Run:
        """Grants are kept by no one here, but the object granted on must exist, as in Snowflake."""
        tokens = parser.rest()
        on = next((n for n, t in enumerate(tokens) if t.kind == "word" and t.value == "ON"), None)
        kinds = {("INTEGRATION",): "integration", ("EXTERNAL", "ACCESS", "INTEGRATION"): "integration",
                 ("SECRET",): "secret", ("NETWORK", "RULE"): "rule"}  # fmt: skip
        for words, kind in kinds.items() if on is not None else []:
            if [t.value for t in tokens[on + 1 : on + 1 + len(words)]] == list(words):
                parser.at += on + 1 + len(words)
                parts = parser.name_parts()
                parser.skip_rest()
                return lambda context: Result.status(self.granted_on(kind, parts, context))
        parser.skip_rest()
        return lambda context: Result.status(NOOP)

    def granted_on(self, kind: str, parts: list[str], context: Context) -> str:
        if kind == "integration":
            self.catalog.access.integration(".".join(parts))
        elif kind == "secret":
            self.catalog.secrets.get(resolve(parts, context))
        else:
            self.catalog.access.rule(str(resolve(parts, context)))
        return NOOP

    def parse_use(self, parser: Parser) -> Run | None:
        parser.expect("USE")
        if parser.accept("SECONDARY", "ROLES"):
            parser.skip_rest()
            return lambda context: Result.status(NOOP)
        kind = "ROLE" if parser.accept("ROLE") else "WAREHOUSE" if parser.accept("WAREHOUSE") else None
        if kind is None:
            return None  # USE DATABASE / SCHEMA: fakesnow keeps track of those
        name = ".".join(parser.name_parts())
        parser.end()

        def use(context: Context) -> Result:
            setattr(context, kind.lower(), name)
            return Result.status(NOOP)

        return use

    def parse_create(self, parser: Parser) -> Run | None:
        parser.expect("CREATE")
        or_replace = parser.accept("OR", "REPLACE")
        if parser.at_words("ROLE") or parser.at_words("WAREHOUSE") or parser.at_words("USER"):
            kind = parser.next().value.title()
            if_not_exists = parser.accept("IF", "NOT", "EXISTS")
            name = parser.name_parts()[-1]
            parser.skip_rest()
            message = f"{name} already exists, statement succeeded." if if_not_exists else None
            return lambda context: Result.status(message or f"{kind} {name} successfully created.")
        if parser.accept("COMPUTE", "POOL"):
            if_not_exists = parser.accept("IF", "NOT", "EXISTS")
            pool = ".".join(parser.name_parts())
            options = parser.options()
            parser.end()
            return lambda context: Result.status(
                self.catalog.create_compute_pool(pool, options, context.role, if_not_exists, or_replace)
            )
        if parser.accept("IMAGE", "REPOSITORY"):
            if_not_exists = parser.accept("IF", "NOT", "EXISTS")
            parts = parser.name_parts()
            options = parser.options()
            parser.end()
            return lambda context: Result.status(
                self.catalog.create_image_repository(
                    resolve(parts, context), context.role, options.get("COMMENT"), if_not_exists, or_replace
                )
            )
        if parser.accept("SERVICE"):
            return self.create_service(parser, or_replace)
        create = None
        if parser.accept("NETWORK", "RULE"):
            create = self.create_rule
        elif parser.accept("EXTERNAL", "ACCESS", "INTEGRATION"):
            create = self.create_integration
        if create is not None:
            if_not_exists = parser.accept("IF", "NOT", "EXISTS")
            parts = parser.name_parts()
            options = parser.options()
            parser.end()
            return lambda context: Result.status(create(parts, options, context, or_replace, if_not_exists))
        if parser.accept("SECRET"):
            if_not_exists = parser.accept("IF", "NOT", "EXISTS")
            parts = parser.name_parts()
            options = parser.options()
            parser.end()
            return lambda context: Result.status(self.catalog.secrets.create(
                resolve(parts, context), dict(options), context.role, or_replace, if_not_exists
            ))  # fmt: skip
        parser.accept("SECURE")
        if parser.accept("FUNCTION"):
            return self.create_function(parser, or_replace)
        return None

    def parse_alter(self, parser: Parser) -> Run | None:
        parser.expect("ALTER")
        if parser.accept("WAREHOUSE") or parser.accept("USER"):
            parser.skip_rest()
            return lambda context: Result.status(NOOP)
        if parser.accept("SESSION"):
            if not (parser.accept("SET") or parser.accept("UNSET")):
                return None
            if not CLIENT_SETTINGS.match(parser.peek().value):
                return None
            parser.skip_rest()
            return lambda context: Result.status(NOOP)
        if parser.accept("SECRET"):
            if_exists = parser.accept("IF", "EXISTS")
            parts = parser.name_parts()
            parser.expect("SET")
            options = parser.options()
            parser.end()
            return lambda context: Result.status(self.alter_secret(resolve(parts, context), options, if_exists))
        kind = "COMPUTE POOL" if parser.accept("COMPUTE", "POOL") else "SERVICE" if parser.accept("SERVICE") else None
        if kind is None:
            return None
        if_exists = parser.accept("IF", "EXISTS")
        parts = parser.name_parts()
        if parser.accept("STOP", "ALL"):
            action = "STOP ALL"
        elif parser.accept("SUSPEND"):
            action = "SUSPEND"
        elif parser.accept("RESUME"):
            action = "RESUME"
        elif parser.accept("SET"):
            action = "SET"
        else:
            word = parser.peek().value or parser.peek().text
            raise unsupported(f"ALTER {kind} ... {word}")
        if action == "STOP ALL" and kind == "SERVICE":
            raise parser.error()
        options = parser.options() if action == "SET" else {}
        parser.end()
        if kind == "COMPUTE POOL":
            return lambda context: Result.status(
                self.catalog.alter_compute_pool(".".join(parts), action, options, if_exists)
            )
        return lambda context: Result.status(
            self.catalog.alter_service(resolve(parts, context), action, options, if_exists)
        )

    def parse_drop(self, parser: Parser) -> Run | None:
        parser.expect("DROP")
        for kind in ("DATABASE", "SCHEMA", "STAGE"):
            if parser.accept(kind):
                if_exists = parser.accept("IF", "EXISTS")
                parts = parser.name_parts()
                parser.accept("CASCADE") or parser.accept("RESTRICT")
                parser.end()
                return lambda context, kind=kind: Result.status(self.drop_storage(kind, parts, context, if_exists))
        if parser.at_words("ROLE") or parser.at_words("WAREHOUSE") or parser.at_words("USER"):
            parser.next()
            if_exists = parser.accept("IF", "EXISTS")
            name = parser.name_parts()[-1]
            parser.skip_rest()
            return lambda context: Result.status(f"{name} successfully dropped.")
        if parser.accept("COMPUTE", "POOL"):
            if_exists = parser.accept("IF", "EXISTS")
            pool = ".".join(parser.name_parts())
            parser.end()
            return lambda context: Result.status(self.catalog.drop_compute_pool(pool, if_exists))
        if parser.accept("IMAGE", "REPOSITORY"):
            if_exists = parser.accept("IF", "EXISTS")
            parts = parser.name_parts()
            parser.end()
            return lambda context: Result.status(self.catalog.drop_image_repository(resolve(parts, context), if_exists))
        if parser.accept("SERVICE"):
            if_exists = parser.accept("IF", "EXISTS")
            parts = parser.name_parts()
            parser.accept("FORCE")
            parser.end()
            return lambda context: Result.status(self.catalog.drop_service(resolve(parts, context), if_exists))
        if parser.accept("FUNCTION"):
            if_exists = parser.accept("IF", "EXISTS")
            parts = parser.name_parts()
            types = parser.listed(parser.data_type)
            parser.end()
            return lambda context: Result.status(self.catalog.drop_function(resolve(parts, context), types, if_exists))
        if parser.accept("SECRET"):
            if_exists = parser.accept("IF", "EXISTS")
            parts = parser.name_parts()
            parser.end()
            return lambda context: Result.status(self.drop_secret(resolve(parts, context), if_exists))
        if parser.accept("NETWORK", "RULE"):
            if_exists = parser.accept("IF", "EXISTS")
            parts = parser.name_parts()
            parser.end()
            return lambda context: Result.status(self.dropped(
                "Network rule", parts[-1], self.catalog.access.drop_rule(str(resolve(parts, context))), if_exists
            ))  # fmt: skip
        if parser.accept("EXTERNAL", "ACCESS", "INTEGRATION") or parser.accept("INTEGRATION"):
            if_exists = parser.accept("IF", "EXISTS")
            name = ".".join(parser.name_parts())
            parser.end()
            return lambda context: Result.status(
                self.dropped("Integration", name, self.catalog.access.drop_integration(name), if_exists)
            )
        return None

    @staticmethod
    def dropped(kind: str, name: str, existed: bool, if_exists: bool) -> str:
        return f"{name} successfully dropped." if existed else already_dropped(kind, name, if_exists)

    # --- network rules and external access integrations ---------------------------------------

    def create_rule(self, parts: list[str], options: dict, context: Context, or_replace: bool,
                    if_not_exists: bool) -> str:  # fmt: skip
        name = resolve(parts, context)
        for required in ("TYPE", "VALUE_LIST", "MODE"):
            if required not in options:
                raise invalid(f"SQL compilation error:\nMissing option '{required}' for CREATE NETWORK RULE.")
        rule = NetworkRule(name.database, name.schema, name.name, str(options["TYPE"]).upper(),
                           str(options["MODE"]).upper(), [str(v) for v in listed(options["VALUE_LIST"])],
                           context.role, options.get("COMMENT"))  # fmt: skip
        return self.catalog.access.create_rule(rule, or_replace, if_not_exists)

    def create_integration(self, parts: list[str], options: dict, context: Context, or_replace: bool,
                           if_not_exists: bool) -> str:  # fmt: skip
        if "ENABLED" not in options:
            raise invalid("SQL compilation error:\nMissing option 'ENABLED' for CREATE EXTERNAL ACCESS INTEGRATION.")
        secrets = options.get("ALLOWED_AUTHENTICATION_SECRETS")
        secrets = [] if str(secrets).upper() in ("NONE", "ALL") else listed(secrets)
        integration = Integration(
            ".".join(parts),
            [str(resolve(str(rule).split("."), context)) for rule in listed(options.get("ALLOWED_NETWORK_RULES"))],
            [str(resolve(str(secret).split("."), context)) for secret in secrets],
            bool(options["ENABLED"]), context.role, options.get("COMMENT"),
        )  # fmt: skip
        return self.catalog.access.create_integration(
            integration, or_replace, if_not_exists, lambda key: key in self.catalog.secrets.secrets
        )

    RULE_COLUMNS: ClassVar = [
        Column("created_on", "timestamp_ltz"), Column("name"), Column("database_name"), Column("schema_name"),
        Column("owner"), Column("comment"), Column("type"), Column("mode"),
    ]  # fmt: skip

    def show_rules(self, pattern: str | None, scope: Any, context: Context) -> Result:
        rows = [[r.created_on, r.name, r.database, r.schema, r.owner, r.comment, r.rule_type, r.mode,
                 len(r.value_list), "ROLE"]
                for r in sorted(self.catalog.access.rules.values(), key=lambda r: r.key)
                if matches(pattern, r.name) and in_scope(scope, context, r.database, r.schema)]  # fmt: skip
        return Result([*self.RULE_COLUMNS, Column("entries_in_valuelist", "fixed"), Column("owner_role_type")], rows)

    def describe_rule(self, name: ObjectName) -> Result:
        r = self.catalog.access.rule(str(name))
        row = [r.created_on, r.name, r.database, r.schema, r.owner, r.comment, r.rule_type, r.mode,
               ",".join(r.value_list)]  # fmt: skip
        return Result([*self.RULE_COLUMNS, Column("value_list")], [row])

    def show_integrations(self, pattern: str | None) -> Result:
        columns = [Column("name"), Column("type"), Column("category"), Column("enabled", "boolean"),
                   Column("comment"), Column("created_on", "timestamp_ltz")]  # fmt: skip
        rows = [[i.name, "EXTERNAL_ACCESS", "SECURITY", i.enabled, i.comment, i.created_on]
                for i in sorted(self.catalog.access.integrations.values(), key=lambda i: i.name)
                if matches(pattern, i.name)]  # fmt: skip
        return Result(columns, rows)

    def describe_integration(self, name: str) -> Result:
        i = self.catalog.access.integration(name)
        properties = [
            ("ENABLED", "Boolean", str(i.enabled).lower(), "false"),
            ("ALLOWED_NETWORK_RULES", "List", ",".join(i.allowed_network_rules), "[]"),
            ("ALLOWED_AUTHENTICATION_SECRETS", "List", ",".join(i.allowed_authentication_secrets), "[]"),
            ("COMMENT", "String", i.comment or "", ""),
        ]
        columns = [Column("property"), Column("property_type"), Column("property_value"), Column("property_default")]
        return Result(columns, [list(p) for p in properties])

    # --- secrets ---------------------------------------------------------------------------------

    def alter_secret(self, name: ObjectName, options: dict[str, Any], if_exists: bool) -> str:
        if if_exists and str(name) not in self.catalog.secrets.secrets:
            return NOOP
        return self.catalog.secrets.alter(name, options)

    def drop_secret(self, name: ObjectName, if_exists: bool) -> str:
        if not self.catalog.secrets.drop(name):
            return already_dropped("Secret", name.name, if_exists)
        return f"{name.name} successfully dropped."

    SECRET_COLUMNS: ClassVar = [
        Column("created_on", "timestamp_ltz"), Column("name"), Column("schema_name"), Column("database_name"),
        Column("owner"), Column("comment"), Column("secret_type"), Column("oauth_scopes"), Column("owner_role_type"),
    ]  # fmt: skip

    def show_secrets(self, pattern: str | None, scope: Any, context: Context) -> Result:
        rows = [
            [s.created_on, s.name, s.schema, s.database, s.owner, s.comment, s.secret_type,
             json.dumps(s.shown("OAUTH_SCOPES")) if s.shown("OAUTH_SCOPES") else None, "ROLE"]
            for s in sorted(self.catalog.secrets.secrets.values(), key=lambda s: s.key)
            if matches(pattern, s.name) and in_scope(scope, context, s.database, s.schema)
        ]  # fmt: skip
        return Result(self.SECRET_COLUMNS, rows)

    def describe_secret(self, name: ObjectName) -> Result:
        s = self.catalog.secrets.get(name)
        columns = [*self.SECRET_COLUMNS[:7], Column("username"), Column("oauth_access_token_expiry_time"),
                   Column("oauth_refresh_token_expiry_time"), Column("oauth_scopes"),
                   Column("integration_name")]  # fmt: skip
        scopes = s.shown("OAUTH_SCOPES")
        row = [s.created_on, s.name, s.schema, s.database, s.owner, s.comment, s.secret_type, s.shown("USERNAME"),
               None, s.shown("OAUTH_REFRESH_TOKEN_EXPIRY_TIME"), json.dumps(scopes) if scopes else None,
               s.shown("API_AUTHENTICATION")]  # fmt: skip
        return Result(columns, [row])

    def drop_storage(self, kind: str, parts: list[str], context: Context, if_exists: bool) -> str:
        """DROP DATABASE | SCHEMA | STAGE: the object and all it holds, the local SPCS's objects in it too."""
        schema: str | None = None
        if kind == "DATABASE":
            if len(parts) != 1:
                raise syntax_error(1, 0, ".".join(parts))
            database = name = parts[0]
            dropped = self.stages.drop_database(database)
        elif kind == "SCHEMA":
            if len(parts) > 2:
                raise syntax_error(1, 0, ".".join(parts))
            where = resolve([*parts, ""], context)  # a schema's name is resolved as its objects' are
            database, schema = where.database, where.schema
            name = schema
            dropped = self.stages.drop_schema(database, schema)
        else:
            stage = resolve(parts, context)
            name, dropped = stage.name, self.stages.drop_stage(stage)
        if not dropped:
            return already_dropped(kind.title(), name, if_exists)
        if kind != "STAGE":
            self.catalog.drop_contents(database, schema)
        return f"{name} successfully dropped."

    # --- services and jobs -------------------------------------------------------------------

    def create_service(self, parser: Parser, or_replace: bool) -> Run:
        if or_replace:
            raise unsupported("CREATE OR REPLACE SERVICE")
        if_not_exists = parser.accept("IF", "NOT", "EXISTS")
        parts = parser.name_parts()
        parser.expect("IN", "COMPUTE", "POOL")
        pool = ".".join(parser.name_parts())
        source = self.spec_source(parser)
        options = parser.options()
        parser.end()

        def create(context: Context) -> Result:
            name = resolve(parts, context)
            spec = source(context)
            return Result.status(self.catalog.create_service(name, pool, spec, options, context.role, if_not_exists))

        return create

    def parse_execute(self, parser: Parser) -> Run | None:
        parser.expect("EXECUTE")
        if not parser.accept("JOB", "SERVICE"):
            return None
        parser.expect("IN", "COMPUTE", "POOL")
        pool = ".".join(parser.name_parts())
        source, options, name_parts = None, {}, None
        while parser.peek().kind == "word":
            if parser.at_words("FROM"):
                if source is not None:
                    raise parser.error()
                source = self.spec_source(parser)
            elif parser.accept("NAME"):
                parser.expect_punct("=")
                name_parts = parser.name_parts()
            else:
                options.update(parser.options(stop=("FROM", "NAME")))
        parser.end()
        if source is None:
            raise parser.error()
        if "REPLICAS" in options and options["REPLICAS"] != 1:
            raise unsupported("REPLICAS other than 1")
        asynchronous = options.pop("ASYNC", False)
        spec_source = source

        def execute(context: Context) -> Result:
            name = resolve(name_parts or [self.catalog.job_name()], context)
            spec = spec_source(context)
            message = self.catalog.execute_job(name, pool, spec, options, context.role, asynchronous, context.cancelled)
            return Result.status(message)

        return execute

    def spec_source(self, parser: Parser) -> Callable[[Context], str]:
        """FROM @stage SPECIFICATION_FILE='file' (the tutorials' SPEC='file' too), or FROM SPECIFICATION $$...$$."""
        parser.expect("FROM")
        if parser.accept("SPECIFICATION"):
            text = parser.string()
            return lambda context: text
        if parser.at_words("SPECIFICATION_TEMPLATE"):
            raise unsupported("SPECIFICATION_TEMPLATE")
        parser.expect_punct("@")
        stage = parser.name_parts()
        key = parser.next()
        if key.kind != "word" or key.value not in ("SPECIFICATION_FILE", "SPEC"):
            if key.value == "SPECIFICATION_TEMPLATE_FILE":
                raise unsupported("SPECIFICATION_TEMPLATE_FILE")
            parser.at -= 1
            raise parser.error()
        parser.expect_punct("=")
        path = parser.string()
        return lambda context: self.stages.read(resolve(stage, context), path)

    def create_function(self, parser: Parser, or_replace: bool) -> Run | None:
        """A service function: CREATE FUNCTION f (args) RETURNS type SERVICE=s ENDPOINT=e [options] AS '/path'."""
        if_not_exists = parser.accept("IF", "NOT", "EXISTS")
        parts = parser.name_parts()
        arguments = parser.listed(lambda: (parser.identifier().value, parser.data_type()))
        parser.expect("RETURNS")
        returns = parser.data_type()
        for words in (("NOT", "NULL"), ("NULL",), ("CALLED", "ON", "NULL", "INPUT"), ("STRICT",), ("VOLATILE",),
                      ("IMMUTABLE",), ("RETURNS", "NULL", "ON", "NULL", "INPUT")):  # fmt: skip
            parser.accept(*words)
        if not parser.ahead("SERVICE", "="):
            return None  # not a service function: fakesnow's
        options = parser.options(stop=("AS",))
        parser.expect("AS")
        path = parser.string()
        parser.end()
        if not arguments:
            raise unsupported("a service function without arguments")
        for required in ("SERVICE", "ENDPOINT"):
            if required not in options:
                raise invalid(f"SQL compilation error:\nMissing option '{required}' for a service function.")
        on_failure = str(options.get("ON_BATCH_FAILURE", "ABORT")).upper()
        if on_failure not in ("ABORT", "RETURN_NULL"):
            raise invalid(f"SQL compilation error:\nON_BATCH_FAILURE must be ABORT or RETURN_NULL, got {on_failure}.")

        def create(context: Context) -> Result:
            name = resolve(parts, context)
            service = resolve(str(options["SERVICE"]).split("."), context)
            function = ServiceFunction(
                name.database, name.schema, name.name, arguments, returns, str(service),
                endpoint=str(options["ENDPOINT"]).lower(), path=path, owner=context.role,
                max_batch_rows=whole(options, "MAX_BATCH_ROWS", None),
                max_batch_retries=whole(options, "MAX_BATCH_RETRIES", 3),
                on_batch_failure=on_failure,
                batch_timeout_secs=whole(options, "BATCH_TIMEOUT_SECS", 604800),
                context_headers=[str(h) for h in options.get("CONTEXT_HEADERS") or []],
                comment=options.get("COMMENT"),
            )  # fmt: skip
            return Result.status(self.catalog.create_function(function, or_replace, if_not_exists))

        return create

    # --- SHOW and DESCRIBE --------------------------------------------------------------------

    def parse_show(self, parser: Parser) -> Run | None:
        parser.expect("SHOW")
        if parser.accept("COMPUTE", "POOLS"):
            pattern, _ = self.like_and_scope(parser)
            return lambda context: self.show_compute_pools(pattern)
        if parser.accept("IMAGE", "REPOSITORIES"):
            pattern, scope = self.like_and_scope(parser)
            return lambda context: self.show_repositories(pattern, scope, context)
        if parser.accept("IMAGES"):
            pattern = self.like(parser)
            parser.expect("IN", "IMAGE", "REPOSITORY")
            parts = parser.name_parts()
            parser.end()
            return lambda context: self.show_images(resolve(parts, context), pattern)
        jobs_only = parser.accept("JOB")
        if parser.accept("SERVICES"):
            exclude_jobs = parser.accept("EXCLUDE", "JOBS")
            pattern, scope = self.like_and_scope(parser)
            return lambda context: self.show_services(pattern, scope, context, jobs_only, exclude_jobs)
        if jobs_only:
            raise parser.error()
        if parser.accept("SERVICE", "CONTAINERS", "IN", "SERVICE"):
            parts = parser.name_parts()
            parser.end()
            return lambda context: self.show_containers(resolve(parts, context))
        if parser.accept("SERVICE", "INSTANCES", "IN", "SERVICE"):
            parts = parser.name_parts()
            parser.end()
            return lambda context: self.show_instances(resolve(parts, context))
        if parser.accept("ENDPOINTS", "IN", "SERVICE"):
            parts = parser.name_parts()
            parser.end()
            return lambda context: self.show_endpoints(resolve(parts, context))
        if parser.accept("USER", "FUNCTIONS"):
            pattern, scope = self.like_and_scope(parser)
            return lambda context: self.show_functions(pattern, scope, context)
        if parser.accept("SECRETS"):
            pattern, scope = self.like_and_scope(parser)
            return lambda context: self.show_secrets(pattern, scope, context)
        if parser.accept("NETWORK", "RULES"):
            pattern, scope = self.like_and_scope(parser)
            return lambda context: self.show_rules(pattern, scope, context)
        if parser.accept("EXTERNAL", "ACCESS", "INTEGRATIONS") or parser.accept("INTEGRATIONS"):
            pattern = self.like(parser)
            parser.end()
            return lambda context: self.show_integrations(pattern)
        return None

    def parse_describe(self, parser: Parser) -> Run | None:
        parser.next()  # DESCRIBE or DESC
        if parser.accept("SERVICE"):
            parts = parser.name_parts()
            parser.end()
            return lambda context: self.describe_service(resolve(parts, context))
        if parser.accept("COMPUTE", "POOL"):
            pool = ".".join(parser.name_parts())
            parser.end()
            return lambda context: self.show_compute_pools(None, only=pool)
        if parser.accept("FUNCTION"):
            parts = parser.name_parts()
            types = parser.listed(parser.data_type)
            parser.end()
            return lambda context: self.describe_function(resolve(parts, context), types)
        if parser.accept("SECRET"):
            parts = parser.name_parts()
            parser.end()
            return lambda context: self.describe_secret(resolve(parts, context))
        if parser.accept("NETWORK", "RULE"):
            parts = parser.name_parts()
            parser.end()
            return lambda context: self.describe_rule(resolve(parts, context))
        if parser.accept("EXTERNAL", "ACCESS", "INTEGRATION") or parser.accept("INTEGRATION"):
            name = ".".join(parser.name_parts())
            parser.end()
            return lambda context: self.describe_integration(name)
        return None

    @staticmethod
    def like(parser: Parser) -> str | None:
        return parser.string() if parser.accept("LIKE") else None

    def like_and_scope(self, parser: Parser) -> tuple[str | None, tuple[str, list[str]] | None]:
        """[LIKE 'pattern'] [IN ACCOUNT | DATABASE [d] | SCHEMA [s] | s | COMPUTE POOL p] [STARTS WITH ..] [LIMIT n]."""
        pattern, scope = self.like(parser), None
        if parser.accept("IN"):
            if parser.accept("ACCOUNT"):
                scope = ("ACCOUNT", [])
            elif parser.accept("COMPUTE", "POOL"):
                scope = ("COMPUTE POOL", parser.name_parts())
            elif parser.at_words("DATABASE") or parser.at_words("SCHEMA"):
                kind = parser.next().value
                named = parser.peek().kind in ("word", "quoted") and parser.peek().value not in ("STARTS", "LIMIT")
                scope = (kind, parser.name_parts() if named else [])
            else:
                scope = ("SCHEMA", parser.name_parts())
        if parser.accept("STARTS", "WITH"):
            parser.string()
        if parser.accept("LIMIT"):
            parser.value()
        parser.end()
        return pattern, scope

    def show_compute_pools(self, pattern: str | None, only: str | None = None) -> Result:
        pools = [p for name, p in sorted(self.catalog.compute_pools.items()) if matches(pattern, name)]
        if only is not None:
            pools = [self.catalog.compute_pool(only)]
        columns = [
            Column("name"), Column("state"), Column("min_nodes", "fixed"), Column("max_nodes", "fixed"),
            Column("instance_family"), Column("num_services", "fixed"), Column("num_jobs", "fixed"),
            Column("auto_suspend_secs", "fixed"), Column("auto_resume", "boolean"), Column("active_nodes", "fixed"),
            Column("idle_nodes", "fixed"), Column("target_nodes", "fixed"), Column("created_on", "timestamp_ltz"),
            Column("resumed_on", "timestamp_ltz"), Column("updated_on", "timestamp_ltz"), Column("owner"),
            Column("comment"), Column("is_exclusive", "boolean"), Column("application"),
        ]  # fmt: skip
        rows = []
        for pool in pools:
            views = self.catalog.services_in_pool(pool.name)
            running = [v for v in views if v.status in ("PENDING", "RUNNING")]
            state = self.catalog.compute_pool_state(pool)
            active = 0 if pool.suspended else pool.min_nodes
            rows.append([
                pool.name, state, pool.min_nodes, pool.max_nodes, pool.instance_family,
                sum(not v.service.is_job for v in running), sum(v.service.is_job for v in running),
                pool.auto_suspend_secs, pool.auto_resume, active if running else 0, 0 if running else active,
                active, pool.created_on, pool.resumed_on, pool.updated_on, pool.owner, pool.comment, False, None,
            ])  # fmt: skip
        return Result(columns, rows)

    def show_repositories(self, pattern: str | None, scope: Any, context: Context) -> Result:
        columns = [
            Column("created_on", "timestamp_ltz"), Column("name"), Column("database_name"), Column("schema_name"),
            Column("repository_url"), Column("owner"), Column("owner_role_type"), Column("comment"),
        ]  # fmt: skip
        rows = [
            [r.created_on, r.name, r.database, r.schema, self.catalog.repository_url(r), r.owner, "ROLE", r.comment]
            for r in sorted(self.catalog.repositories.values(), key=lambda r: (r.database, r.schema, r.name))
            if matches(pattern, r.name) and in_scope(scope, context, r.database, r.schema)
        ]
        return Result(columns, rows)

    def show_images(self, repository: ObjectName, pattern: str | None) -> Result:
        columns = [Column("created_on", "timestamp_ltz"), Column("image_name"), Column("tags"), Column("digest"),
                   Column("image_path")]  # fmt: skip
        path = f"{repository.database}/{repository.schema}/{repository.name}".lower()
        rows = [
            [image.created_on, image.name, image.tag, image.digest, f"{path}/{image.name}:{image.tag}"]
            for image in self.catalog.images(repository)
            if matches(pattern, image.name)
        ]
        return Result(columns, rows)

    SERVICE_COLUMNS: ClassVar[list[Column]] = [
        Column("name"), Column("status"), Column("database_name"), Column("schema_name"), Column("owner"),
        Column("compute_pool"), Column("dns_name"), Column("current_instances", "fixed"),
        Column("target_instances", "fixed"), Column("min_ready_instances", "fixed"), Column("min_instances", "fixed"),
        Column("max_instances", "fixed"), Column("auto_resume", "boolean"), Column("external_access_integrations"),
        Column("created_on", "timestamp_ltz"), Column("updated_on", "timestamp_ltz"),
        Column("resumed_on", "timestamp_ltz"), Column("suspended_on", "timestamp_ltz"),
        Column("auto_suspend_secs", "fixed"), Column("comment"), Column("owner_role_type"), Column("query_warehouse"),
        Column("is_job", "boolean"), Column("is_async_job", "boolean"), Column("spec_digest"),
        Column("is_upgrading", "boolean"), Column("managing_object_domain"), Column("managing_object_name"),
    ]  # fmt: skip

    def service_row(self, view: ServiceView) -> list[Any]:
        s = view.service
        running = 1 if view.status in ("RUNNING", "PENDING") else 0
        integrations = json.dumps(s.external_access_integrations) if s.external_access_integrations else None
        return [
            s.name, view.status, s.database, s.schema, s.owner, s.compute_pool, s.dns_name, running,
            0 if s.suspended or s.outcome else 1, s.min_instances, s.min_instances, s.max_instances, s.auto_resume,
            integrations, s.created_on, s.updated_on, s.resumed_on, s.suspended_on, 0, s.comment, "ROLE",
            s.query_warehouse, s.is_job, s.is_async_job, s.spec_digest, False, None, None,
        ]  # fmt: skip

    def show_services(
        self, pattern: str | None, scope: Any, context: Context, jobs_only: bool, exclude_jobs: bool
    ) -> Result:
        rows = []
        for view in sorted(self.catalog.views(), key=lambda v: v.service.key):
            s = view.service
            if (jobs_only and not s.is_job) or (exclude_jobs and s.is_job) or not matches(pattern, s.name):
                continue
            if scope and scope[0] == "COMPUTE POOL":
                if s.compute_pool != ".".join(scope[1]):
                    continue
            elif not in_scope(scope, context, s.database, s.schema):
                continue
            rows.append(self.service_row(view))
        return Result(self.SERVICE_COLUMNS, rows)

    def describe_service(self, name: ObjectName) -> Result:
        view = self.catalog.view(self.catalog.service(name))
        row = self.service_row(view)
        columns = [*self.SERVICE_COLUMNS[:6], Column("spec"), *self.SERVICE_COLUMNS[6:]]
        return Result(columns, [[*row[:6], spec_yaml(view.service.spec), *row[6:]]])

    def show_containers(self, name: ObjectName) -> Result:
        view = self.catalog.view(self.catalog.service(name))
        columns = [
            Column("database_name"), Column("schema_name"), Column("service_name"), Column("service_status"),
            Column("instance_id"), Column("instance_status"), Column("container_name"), Column("status"),
            Column("message"), Column("image_name"), Column("image_digest"), Column("restart_count", "fixed"),
            Column("start_time"), Column("last_exit_code", "fixed"), Column("last_restart_time", "timestamp_ltz"),
        ]  # fmt: skip
        s, instance = view.service, instance_status(view)
        rows = [
            [
                s.database,
                s.schema,
                s.name,
                view.status,
                None if s.suspended else "0",
                instance,
                c.name,
                c.status,
                c.message,
                c.image or None,
                c.digest,
                c.restarts,
                c.started and c.started.isoformat(),
                c.exit_code,
                None,
            ]
            for c in view.containers
        ]
        return Result(columns, rows)

    def show_instances(self, name: ObjectName) -> Result:
        view = self.catalog.view(self.catalog.service(name))
        s = view.service
        columns = [
            Column("database_name"), Column("schema_name"), Column("service_name"), Column("service_status"),
            Column("instance_id"), Column("status"), Column("spec_digest"), Column("creation_time"),
            Column("start_time"), Column("ip_address"),
        ]  # fmt: skip
        if s.suspended:
            return Result(columns, [])
        started = min((c.started for c in view.containers if c.started), default=None)
        ip = next((c.ip for c in view.containers if c.ip), None)
        row = [s.database, s.schema, s.name, view.status, "0", instance_status(view), s.spec_digest,
               s.created_on.isoformat(), started and started.isoformat(), ip]  # fmt: skip
        return Result(columns, [row])

    def show_endpoints(self, name: ObjectName) -> Result:
        view = self.catalog.view(self.catalog.service(name))
        columns = [Column("name"), Column("port", "fixed"), Column("port_range"), Column("protocol"),
                   Column("is_public", "boolean"), Column("ingress_url")]  # fmt: skip
        host_ports = {port: host for c in view.containers for port, host in c.ports.items()}
        rows = []
        for endpoint in view.service.document["spec"].get("endpoints") or []:
            port, public = endpoint.get("port"), bool(endpoint.get("public", False))
            if endpoint["name"] in view.service.external:  # a service running elsewhere: where it answers
                url = view.service.external[endpoint["name"]].split("://")[-1]
                port, public = int(url.rsplit(":", 1)[1]), True
            elif not public:
                url = None
            elif view.status == "RUNNING" and port in host_ports:
                url = f"127.0.0.1:{host_ports[port]}"
            else:
                url = "Endpoints provisioning in progress... check back in a few minutes"
            rows.append([endpoint["name"], port, endpoint.get("portRange"), endpoint.get("protocol", "HTTP"), public,
                         url])  # fmt: skip
        return Result(columns, rows)

    def show_functions(self, pattern: str | None, scope: Any, context: Context) -> Result:
        columns = [
            Column("created_on", "timestamp_ltz"), Column("name"), Column("schema_name"),
            Column("is_builtin"), Column("is_aggregate"), Column("is_ansi"), Column("min_num_arguments", "fixed"),
            Column("max_num_arguments", "fixed"), Column("arguments"), Column("description"),
            Column("catalog_name"), Column("is_table_function"), Column("valid_for_clustering"),
            Column("is_secure"), Column("is_external_function"), Column("language"),
        ]  # fmt: skip
        rows = []
        for f in sorted(self.catalog.functions.values(), key=lambda f: (f.database, f.schema, f.name)):
            if matches(pattern, f.name) and in_scope(scope, context, f.database, f.schema):
                n = len(f.arguments)
                description = f.comment or "user-defined function"
                rows.append([f.created_on, f.name, f.schema, "N", "N", "N", n, n, f"{f.signature} RETURN {f.returns}",
                             description, f.database, "N", "N", "N", "Y", "EXTERNAL"])  # fmt: skip
        return Result(columns, rows)

    def describe_function(self, name: ObjectName, types: list[str]) -> Result:
        matching = [
            f for f in self.catalog.functions.values()
            if (f.database, f.schema, f.name) == (name.database, name.schema, name.name)
            and [t.split("(")[0] for _, t in f.arguments] == [t.split("(")[0] for t in types]
        ]  # fmt: skip
        if not matching:
            raise SnowflakeError(
                f"SQL compilation error:\nFunction '{name.name}({', '.join(types)})' does not exist or not authorized."
            )
        f = matching[0]
        properties = [
            ("signature", f"({', '.join(f'{n} {t}' for n, t in f.arguments)})"),
            ("returns", f.returns),
            ("service", f.service),
            ("endpoint", f.endpoint),
            ("path", f.path),
            ("max_batch_rows", f.max_batch_rows),
            ("max_batch_retries", f.max_batch_retries),
            ("on_batch_failure", f.on_batch_failure),
            ("batch_timeout_secs", f.batch_timeout_secs),
            ("context_headers", ", ".join(f.context_headers) or None),
        ]
        return Result([Column("property"), Column("value")], [[key, value] for key, value in properties])

    # --- SYSTEM$ functions --------------------------------------------------------------------

    def parse_select(self, parser: Parser) -> Run | None:
        parser.expect("SELECT")
        return self.system_function(parser, column_from_call=True)

    def parse_call(self, parser: Parser) -> Run | None:
        parser.expect("CALL")
        return self.system_function(parser, column_from_call=False)

    def system_function(self, parser: Parser, column_from_call: bool) -> Run | None:
        token = parser.peek()
        if token.kind != "word" or token.value not in SYSTEM_FUNCTIONS or parser.peek(1).text != "(":
            return None
        start = parser.next()
        arguments = parser.arguments()
        parser.end()
        # SELECT names its column after the call, CALL after the function.
        column = f"{start.value}({', '.join(map(sql_literal, arguments))})" if column_from_call else start.value
        function = getattr(self, start.value.removeprefix("SYSTEM$").lower())
        return lambda context: Result([Column(column)], [[function(context, *arguments)]])

    def wait_for_services(self, context: Context, seconds: Any = None, *names: Any) -> str:
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0 or not names:
            raise invalid("SYSTEM$WAIT_FOR_SERVICES takes a number of seconds and one or more service names.")
        return self.catalog.wait_for_services([resolve(name_in(n), context) for n in names], seconds, context.cancelled)

    def get_service_logs(
        self, context: Context, service: Any = None, instance: Any = None, container: Any = None,
        lines: Any = 100_000, previous: Any = False, *rest: Any,
    ) -> str:  # fmt: skip
        if service is None or instance is None or container is None:
            raise invalid("SYSTEM$GET_SERVICE_LOGS takes a service name, an instance id and a container name.")
        try:
            instance_id, line_count = int(instance), int(lines)
        except (TypeError, ValueError):
            raise invalid("SYSTEM$GET_SERVICE_LOGS: the instance id and the line count are whole numbers.") from None
        if previous is True:
            return ""  # the local SPCS keeps no earlier run of a container
        return self.catalog.logs(resolve(name_in(service), context), instance_id, str(container), line_count)

    def get_service_status(self, context: Context, service: Any = None, *rest: Any) -> str:
        view = self.catalog.view(self.catalog.service(resolve(name_in(service), context)))
        return json.dumps([
            {"status": c.status, "message": c.message, "containerName": c.name, "instanceId": "0",
             "serviceName": view.service.name, "image": c.image, "restartCount": c.restarts,
             "startTime": c.started and c.started.isoformat()}
            for c in view.containers
        ])  # fmt: skip

    def get_compute_pool_status(self, context: Context, pool: Any = None, *rest: Any) -> str:
        compute_pool = self.catalog.compute_pool(".".join(name_in(pool)))
        state = self.catalog.compute_pool_state(compute_pool)
        return json.dumps({"status": state, "message": f"Compute pool is {state.lower()}.", "applications": []})


# --- helpers --------------------------------------------------------------------------------------


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


def instance_status(view: ServiceView) -> str | None:
    statuses = {c.status for c in view.containers}
    if not statuses or view.service.suspended:
        return None
    if "FAILED" in statuses:
        return "FAILED"
    if statuses == {"DONE"}:
        return "SUCCEEDED"
    return "READY" if statuses <= {"READY", "DONE"} else "PENDING"


def whole(options: dict[str, Any], key: str, default: int | None) -> int | None:
    value = options.get(key, default)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise invalid(f"SQL compilation error:\n{key} must be a whole number, got {value!r}.")
    return value


def spec_yaml(spec: str) -> str:
    """DESCRIBE SERVICE shows the spec as YAML, whether it was given as YAML or as JSON."""
    return yaml.safe_dump(yaml.safe_load(spec), sort_keys=False)


def sql_literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if value is None:
        return "NULL"
    return str(value).upper() if isinstance(value, bool) else str(value)
