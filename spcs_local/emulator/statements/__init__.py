"""The statement layer: SPCS SQL turned into calls on the catalog, and their answers as result sets.

`Statements.parse(sql)` returns what to run for the statements the local SPCS answers itself (SPCS
objects, service functions, SYSTEM$ functions, and the no-ops a single machine has nothing to
enforce for: roles, grants, warehouses, client session settings), or None for any other statement,
which fakesnow runs. It knows nothing of Docker.

One module a family: `parser` (tokens, names, the session's context), `access` (secrets, network rules,
integrations), `listings` (SHOW and DESCRIBE), `system` (SYSTEM$ functions); this one dispatches by a
statement's first words, and holds the rest (pools, repositories, services, jobs, functions, databases).
"""

import re
from collections.abc import Callable
from typing import Any

from spcs_local.emulator import USER, spec_templates
from spcs_local.emulator.catalog import Catalog, ServiceFunction, already_dropped
from spcs_local.emulator.catalog.users import KEY_SLOTS
from spcs_local.emulator.results import Result, SnowflakeError, invalid, syntax_error, unsupported
from spcs_local.emulator.statements.access import AccessStatements
from spcs_local.emulator.statements.builds import BuildRequests
from spcs_local.emulator.statements.listings import ListingStatements
from spcs_local.emulator.statements.parser import NOOP, Context, Parser, Run, Storage, resolve, statement_count, tokens
from spcs_local.emulator.statements.system import SystemFunctions
from spcs_local.emulator.statements.telemetry import TelemetryStatements

__all__ = ["Context", "Run", "Statements", "Storage", "statement_count"]


CLIENT_SETTINGS = re.compile(r"^(PYTHON_CONNECTOR_|CLIENT_|JDBC_|ODBC_|QUERY_TAG$|ABORT_DETACHED_QUERY$)")
# DuckDB's own statements, which Snowflake doesn't have: files, extensions and settings of the engine underneath.
ENGINE_STATEMENTS = {"ATTACH", "DETACH", "INSTALL", "LOAD", "PRAGMA", "EXPORT", "IMPORT", "CHECKPOINT", "FORCE",
                     "VACUUM", "RESET"}  # fmt: skip


class Statements(AccessStatements, BuildRequests, ListingStatements, SystemFunctions, TelemetryStatements):
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
        if parser.accept("EVENT", "TABLE"):
            return self.parse_create_event_table(parser, or_replace)
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
        if parser.accept("USER"):
            return self.parse_alter_user(parser)
        if parser.accept("WAREHOUSE"):
            parser.skip_rest()
            return lambda context: Result.status(NOOP)
        if parser.accept("SESSION"):
            if not (parser.accept("SET") or parser.accept("UNSET")):
                return None
            if not CLIENT_SETTINGS.match(parser.peek().value):
                return None
            parser.skip_rest()
            return lambda context: Result.status(NOOP)
        if parser.accept("ACCOUNT"):
            return self.parse_alter_account(parser)
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
        if kind == "SERVICE" and parser.at_words("FROM"):  # an upgrade to a new spec
            source = self.spec_source(parser)
            parser.end()
            return lambda context: Result.status(
                self.catalog.upgrade_service(resolve(parts, context), source(context), if_exists)
            )
        if parser.accept("STOP", "ALL"):
            action = "STOP ALL"
        elif parser.accept("SUSPEND"):
            action = "SUSPEND"
        elif parser.accept("RESUME"):
            action = "RESUME"
        elif parser.accept("SET"):
            action = "SET"
        elif parser.accept("UNSET"):
            action = "UNSET"
        else:
            word = parser.peek().value or parser.peek().text
            raise unsupported(f"ALTER {kind} ... {word}")
        if action == "STOP ALL" and kind == "SERVICE":
            raise parser.error()
        options = parser.options() if action == "SET" else {}
        if action == "UNSET":  # the properties, back to their defaults
            options = {parser.identifier().value: None}
            while parser.accept_punct(","):
                options[parser.identifier().value] = None
        parser.end()
        if kind == "COMPUTE POOL":
            return lambda context: Result.status(
                self.catalog.alter_compute_pool(".".join(parts), action, options, if_exists)
            )
        return lambda context: Result.status(
            self.catalog.alter_service(resolve(parts, context), action, options, if_exists)
        )

    def parse_alter_user(self, parser: Parser) -> Run:
        """ALTER USER name SET | UNSET RSA_PUBLIC_KEY[_2]: the local user's keys for key-pair logins. Anything else,
        and any other user (setup scripts create theirs, which don't exist here), changes nothing."""
        parser.accept("IF", "EXISTS")
        user = parser.identifier().value
        if parser.accept("UNSET"):
            changes = {parser.identifier().value: None}
            while parser.accept_punct(","):
                changes[parser.identifier().value] = None
        elif parser.accept("SET"):
            changes = parser.options()
        else:
            parser.skip_rest()
            return lambda context: Result.status(NOOP)
        parser.end()
        keys = {slot: value for slot, value in changes.items() if slot in KEY_SLOTS and user.upper() == USER.upper()}

        def alter(context: Context) -> Result:
            for slot, value in keys.items():
                self.catalog.set_user_key(user, slot, None if value is None else str(value))
            return Result.status(NOOP)

        return alter

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
        options = parser.options(stop=("FROM",))  # properties may come before FROM too, as in the docs' examples
        source = self.spec_source(parser)
        options.update(parser.options())
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
        asynchronous = options.pop("ASYNC", False)
        spec_source = source

        def execute(context: Context) -> Result:
            name = resolve(name_parts or [self.catalog.job_name()], context)
            spec = spec_source(context)
            message = self.catalog.execute_job(name, pool, spec, options, context.role, asynchronous, context.cancelled)
            return Result.status(message)

        return execute

    def spec_source(self, parser: Parser) -> Callable[[Context], str]:
        """FROM @stage SPECIFICATION_FILE='file' (the tutorials' SPEC='file' too), or FROM SPECIFICATION $$...$$;
        or either as a template, SPECIFICATION_TEMPLATE[_FILE], followed by USING (key => value, ...)."""
        parser.expect("FROM")
        template = parser.accept("SPECIFICATION_TEMPLATE")
        if template or parser.accept("SPECIFICATION"):
            text = parser.string()
            read: Callable[[Context], str] = lambda context: text  # noqa: E731
        else:
            parser.expect_punct("@")
            stage = parser.name_parts()
            key = parser.next()
            template = key.value == "SPECIFICATION_TEMPLATE_FILE"
            if key.kind != "word" or not (template or key.value in ("SPECIFICATION_FILE", "SPEC")):
                parser.at -= 1
                raise parser.error()
            parser.expect_punct("=")
            path = parser.string()
            read = lambda context: self.stages.read(resolve(stage, context), path)  # noqa: E731
        if not template:
            return read
        parser.expect("USING")
        values = dict(parser.listed(lambda: template_value(parser)))

        def rendered(context: Context) -> str:
            try:
                return spec_templates.render(read(context), values)
            except spec_templates.TemplateProblem as problem:
                raise invalid(f"Invalid specification template: {problem}.") from None

        return rendered

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


def whole(options: dict[str, Any], key: str, default: int | None) -> int | None:
    value = options.get(key, default)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise invalid(f"SQL compilation error:\n{key} must be a whole number, got {value!r}.")
    return value


def template_value(parser: Parser) -> tuple[str, str]:
    """`key => value` of a template's USING: the key as written, the value as the template gets it (a string's
    text, a number or TRUE/FALSE as written)."""
    key = parser.identifier()
    parser.expect_punct("=>")
    token = parser.next()
    if token.kind in ("string", "dollar"):
        value = token.value
    elif token.kind == "number" or (token.kind == "word" and token.value in ("TRUE", "FALSE")):
        value = token.text.lower()
    else:
        parser.at -= 1
        raise parser.error()
    return (key.value if key.kind == "quoted" else key.text), value
