"""Snowflake secrets, as CREATE SECRET makes them and a spec's `containers[].secrets` reads them. No SQL, no Docker.

They persist apart from the catalog, in a file only its owner may read (0600, in a folder of mode 0700). A value
never leaves the store but into the container that names it: SHOW and DESCRIBE show no value, and errors name
the secret, never what it holds.
"""

import json
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from spcs_local.emulator.atomic import write
from spcs_local.emulator.results import does_not_exist, invalid, put_new


class SecretName(Protocol):
    """A schema object's name (the catalog's ObjectName)."""

    database: str
    schema: str
    name: str


# Each type's options, and the keys a spec reads (secretKeyRef, or a file of that name under directoryPath).
TYPES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "PASSWORD": (("USERNAME", "PASSWORD"), ("username", "password")),
    "GENERIC_STRING": (("SECRET_STRING",), ("secret_string",)),
    "OAUTH2": (("API_AUTHENTICATION", "OAUTH_SCOPES", "OAUTH_REFRESH_TOKEN", "OAUTH_REFRESH_TOKEN_EXPIRY_TIME"), ()),
    "CLOUD_PROVIDER_TOKEN": (("API_AUTHENTICATION", "ENABLED"), ()),
    "SYMMETRIC_KEY": (("ALGORITHM",), ()),
}
SHOWN = ("USERNAME", "OAUTH_SCOPES", "API_AUTHENTICATION", "OAUTH_REFRESH_TOKEN_EXPIRY_TIME", "ALGORITHM")
PART = r'"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*'


@dataclass
class Secret:
    database: str
    schema: str
    name: str
    secret_type: str
    owner: str
    options: dict[str, Any]  # as given: the values too
    comment: str | None = None
    created_on: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def key(self) -> str:
        return f"{self.database}.{self.schema}.{self.name}"

    def shown(self, option: str) -> Any:
        """An option SHOW and DESCRIBE may show: never a password, a string or a token."""
        return self.options.get(option) if option in SHOWN else None


class SecretStore:
    def __init__(self, path: Path) -> None:
        self.path, self.lock = path, threading.Lock()
        self.secrets: dict[str, Secret] = {}
        if path.exists():
            for record in json.loads(path.read_text()):
                secret = Secret(**{**record, "created_on": datetime.fromisoformat(record["created_on"])})
                self.secrets[secret.key] = secret

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.parent.chmod(0o700)
        records = [{**vars(s), "created_on": s.created_on.isoformat()} for s in self.secrets.values()]
        write(self.path, json.dumps(records).encode(), 0o600)

    def create(
        self, name: SecretName, options: dict[str, Any], owner: str, or_replace: bool, if_not_exists: bool
    ) -> str:
        secret_type = str(options.pop("TYPE", "")).upper()
        if secret_type not in TYPES:
            raise invalid(f"SQL compilation error:\nTYPE must be one of {', '.join(TYPES)}, not '{secret_type}'.")
        allowed = TYPES[secret_type][0]
        unknown = [option for option in options if option not in (*allowed, "COMMENT")]
        if unknown:
            raise invalid(
                f"SQL compilation error:\ninvalid property '{unknown[0]}' for a secret of TYPE = {secret_type}."
            )
        comment = options.pop("COMMENT", None)
        secret = Secret(name.database, name.schema, name.name, secret_type, owner, options, comment)
        with self.lock:
            answer = put_new(self.secrets, secret.key, secret, name.name, or_replace, if_not_exists)
            self.save()
        return answer or f"Secret {name.name} successfully created."

    def get(self, name: SecretName) -> Secret:
        key = f"{name.database}.{name.schema}.{name.name}"
        if key not in self.secrets:
            raise does_not_exist("Secret", name.name)
        return self.secrets[key]

    def alter(self, name: SecretName, options: dict[str, Any]) -> str:
        with self.lock:
            secret = self.get(name)
            for option, value in options.items():
                if option == "COMMENT":
                    secret.comment = value
                elif option in TYPES[secret.secret_type][0]:
                    secret.options[option] = value
                else:
                    raise bad_property(option, secret.secret_type)
            self.save()
        return "Statement executed successfully."

    def drop(self, name: SecretName) -> bool:
        with self.lock:
            dropped = self.secrets.pop(f"{name.database}.{name.schema}.{name.name}", None)
            self.save()
        return dropped is not None

    def value(self, name: SecretName, key: str) -> str:
        """What a container gets for the secret's `key` (secretKeyRef, or a file's name)."""
        secret = self.get(name)
        readable = TYPES[secret.secret_type][1]
        if key not in readable:
            offered = ", ".join(readable) or "none the local SPCS can give (it reaches no OAuth or cloud provider)"
            raise invalid(f"Invalid spec: secret {name.name} of TYPE = {secret.secret_type} has no key '{key}': "
                          f"its keys are {offered}.")  # fmt: skip
        return str(secret.options.get(key.upper(), ""))

    def files(self, name: SecretName) -> dict[str, str]:
        """What a `directoryPath` holds: a file for each of the secret's keys, named after it."""
        keys = TYPES[self.get(name).secret_type][1] or ("access_token",)  # which value() refuses, naming why
        return {key: self.value(name, key) for key in keys}


def bad_property(option: str, secret_type: str) -> Exception:
    return invalid(f"SQL compilation error:\ninvalid property '{option}' for a secret of TYPE = {secret_type}.")


def secret_name(text: str, database: str, schema: str) -> tuple[str, str, str]:
    """A spec's `objectName` ('db.schema.name', 'name', '"Quoted"'): its database, schema and name, in the
    service's schema unless qualified."""
    parts = re.findall(PART, text) if re.fullmatch(rf"(?:{PART})(?:\.(?:{PART})){{0,2}}", text.strip()) else []
    if not parts:
        raise invalid(f"Invalid spec: '{text}' is not a secret's name.")
    names = [p[1:-1].replace('""', '"') if p.startswith('"') else p.upper() for p in parts]
    database, schema, name = [database, schema][: 3 - len(names)] + names
    return database, schema, name
