"""Network rules and external access integrations: the objects with which SPCS opens egress. No SQL, no Docker.

A network rule is a schema object (`TYPE = HOST_PORT`, `MODE = EGRESS`, `VALUE_LIST`); an integration is an
account object naming rules and the secrets they may use. They are kept, shown and checked as Snowflake does:
an integration's rules and secrets must exist, and so must the integrations a service or job names.
"""

import json
import re
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from spcs_local.emulator.atomic import write
from spcs_local.emulator.results import does_not_exist, invalid, put_new

RULE_TYPES = ("IPV4", "AWSVPCEID", "AZURELINKID", "GCPPSCID", "HOST_PORT", "PRIVATE_HOST_PORT")
RULE_MODES = ("INGRESS", "INTERNAL_STAGE", "EGRESS", "POSTGRES_INGRESS", "POSTGRES_EGRESS")
# A HOST_PORT value: a host name (a leading `*.` for its subdomains) or an IPv4 address, and an optional port.
LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOST_PORT = re.compile(rf"(?:\*\.)?{LABEL}(?:\.{LABEL})*\.?(?::[0-9]{{1,5}})?")


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class NetworkRule:
    database: str
    schema: str
    name: str
    rule_type: str
    mode: str
    value_list: list[str]
    owner: str
    comment: str | None = None
    created_on: datetime = field(default_factory=now)

    @property
    def key(self) -> str:
        return f"{self.database}.{self.schema}.{self.name}"


@dataclass
class Integration:
    name: str
    allowed_network_rules: list[str]  # DATABASE.SCHEMA.NAME
    allowed_authentication_secrets: list[str]
    enabled: bool
    owner: str
    comment: str | None = None
    created_on: datetime = field(default_factory=now)


class Access:
    def __init__(self, path: Path) -> None:
        self.path, self.lock = path, threading.Lock()
        self.on_changed: Callable[[], None] = lambda: None  # running services' egress follows each change
        self.rules: dict[str, NetworkRule] = {}
        self.integrations: dict[str, Integration] = {}
        if path.exists():
            saved = json.loads(path.read_text())
            for record in saved.get("rules", []):
                rule = NetworkRule(**{**record, "created_on": datetime.fromisoformat(record["created_on"])})
                self.rules[rule.key] = rule
            for record in saved.get("integrations", []):
                integration = Integration(**{**record, "created_on": datetime.fromisoformat(record["created_on"])})
                self.integrations[integration.name] = integration

    def save(self) -> None:
        encode = lambda obj: {**asdict(obj), "created_on": obj.created_on.isoformat()}  # noqa: E731
        state = {"rules": [encode(r) for r in self.rules.values()],
                 "integrations": [encode(i) for i in self.integrations.values()]}  # fmt: skip
        write(self.path, json.dumps(state, indent=1).encode())
        self.on_changed()

    # --- network rules -----------------------------------------------------------------------

    def create_rule(self, rule: NetworkRule, or_replace: bool, if_not_exists: bool) -> str:
        if rule.rule_type not in RULE_TYPES:
            raise invalid(f"SQL compilation error:\nTYPE must be one of {', '.join(RULE_TYPES)}.")
        if rule.mode not in RULE_MODES:
            raise invalid(f"SQL compilation error:\nMODE must be one of {', '.join(RULE_MODES)}.")
        if rule.rule_type == "HOST_PORT":
            for value in rule.value_list:
                if not HOST_PORT.fullmatch(value) or not 0 < int(host_port(value).rpartition(":")[2]) < 65536:
                    raise invalid(f"SQL compilation error:\nInvalid value '{value[:300]}' in VALUE_LIST: write a "
                                  "host name (or *.domain, or 0.0.0.0), with :port or without (443).")  # fmt: skip
        with self.lock:
            answer = put_new(self.rules, rule.key, rule, rule.name, or_replace, if_not_exists)
            self.save()
        return answer or f"Network rule {rule.name} successfully created."

    def rule(self, key: str) -> NetworkRule:
        if key not in self.rules:
            raise does_not_exist("Network rule", key.rsplit(".", 1)[-1])
        return self.rules[key]

    def drop_rule(self, key: str) -> bool:
        with self.lock:
            dropped = self.rules.pop(key, None)
            self.save()
        return dropped is not None

    # --- external access integrations --------------------------------------------------------

    def create_integration(
        self, integration: Integration, or_replace: bool, if_not_exists: bool, secret_exists: Callable[[str], bool]
    ) -> str:
        for rule in integration.allowed_network_rules:
            if self.rule(rule).mode != "EGRESS":
                raise invalid(f"SQL compilation error:\nNetwork rule '{rule}' is not of MODE = EGRESS.")
        for secret in integration.allowed_authentication_secrets:
            if not secret_exists(secret):
                raise does_not_exist("Secret", secret.rsplit(".", 1)[-1])
        with self.lock:
            name = integration.name
            answer = put_new(self.integrations, name, integration, name, or_replace, if_not_exists)
            self.save()
        return answer or f"Integration {integration.name} successfully created."

    def integration(self, name: str) -> Integration:
        if name not in self.integrations:
            raise does_not_exist("Integration", name)
        return self.integrations[name]

    def drop_integration(self, name: str) -> bool:
        with self.lock:
            dropped = self.integrations.pop(name, None)
            self.save()
        return dropped is not None

    def egress(self, names: list[str]) -> list[str]:
        """Where a service or job with these integrations may connect: `host:port` from the EGRESS HOST_PORT
        rules of those enabled (443 where a value names no port), each once."""
        allowed: dict[str, None] = {}
        for name in names:
            integration = self.integrations.get(name)
            for key in integration.allowed_network_rules if integration and integration.enabled else []:
                rule = self.rules.get(key)
                if rule and rule.mode == "EGRESS" and rule.rule_type == "HOST_PORT":
                    allowed |= {host_port(value): None for value in rule.value_list}
        return list(allowed)

    def check(self, names: list[Any]) -> list[str]:
        """The integrations a service or job names, each of which must exist."""
        return [self.integration(str(name)).name for name in names]


def host_port(value: str) -> str:
    """A HOST_PORT value with its port: 443 unless it names one."""
    return value if ":" in value else f"{value}:443"
