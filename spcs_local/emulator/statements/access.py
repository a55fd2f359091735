"""Secrets, network rules and external access integrations as statements: CREATE, ALTER, SHOW, DESCRIBE and DROP,
and what a grant on one of them checks."""

import json
from typing import Any, ClassVar

from spcs_local.emulator.access import Integration, NetworkRule
from spcs_local.emulator.catalog import Catalog, ObjectName, already_dropped, listed
from spcs_local.emulator.results import Column, Result, invalid
from spcs_local.emulator.statements.parser import (
    NOOP,
    Context,
    in_scope,
    matches,
    resolve,
)  # fmt: skip


class AccessStatements:
    """Part of Statements (its `catalog`): the statements of secrets, network rules and integrations."""

    catalog: Catalog

    def granted_on(self, kind: str, parts: list[str], context: Context) -> str:
        if kind == "integration":
            self.catalog.access.integration(".".join(parts))
        elif kind == "secret":
            self.catalog.secrets.get(resolve(parts, context))
        else:
            self.catalog.access.rule(str(resolve(parts, context)))
        return NOOP

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
