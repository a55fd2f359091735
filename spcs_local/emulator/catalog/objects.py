"""The local SPCS's objects as records (pools, repositories, services and jobs, service functions), what they
persist as, and the rules their options follow (sizes, flags, instance families). No SQL, no Docker."""

import dataclasses
import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import yaml

from spcs_local.emulator.results import does_not_exist, invalid
from spcs_local.emulator.workload import ContainerState, parse_timestamp
from spcs_local.lint import as_spcs_reads

LOGS_TAIL_DEFAULT = 100_000
INTERRUPTED = "Interrupted: the local SPCS stopped while the job ran."
REGISTRY_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")  # of an image's path, as registries take it
CANCELLED = "Cancelled: the statement that ran the job was cancelled."
UPGRADE_SECONDS = 300  # for an upgraded service's new instance to become READY
# What a node of each instance family gives its containers (vCPUs, GiB of memory), as CREATE COMPUTE POOL lists
# them: a container without resources.limits gets its node's capacity, and no more is granted.
INSTANCE_FAMILIES = {
    "CPU_X64_XS": (1, 6), "CPU_X64_S": (3, 13), "CPU_X64_M": (6, 28), "CPU_X64_SL": (14, 54), "CPU_X64_L": (28, 116),
    "HIGHMEM_X64_S": (6, 58), "HIGHMEM_X64_M": (28, 240), "HIGHMEM_X64_SL": (92, 654), "HIGHMEM_X64_L": (124, 984),
    "GPU_NV_XS": (3, 26), "GPU_NV_S": (6, 27), "GPU_NV_M": (44, 178), "GPU_NV_SM": (32, 200), "GPU_NV_2M": (68, 362),
    "GPU_NV_3M": (44, 350), "GPU_NV_L": (92, 1112),
}  # fmt: skip
MEMORY_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
MEMORY_UNITS |= {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ObjectName:
    """A schema object's name, each part as Snowflake stores it (unquoted names in uppercase)."""

    database: str
    schema: str
    name: str

    def __str__(self) -> str:
        return f"{self.database}.{self.schema}.{self.name}"


@dataclass(frozen=True)
class Image:
    name: str
    tag: str
    digest: str
    created_on: datetime | None


class ImageStore(Protocol):
    """The image registry: `address` is host:port, as image tags and docker push name it."""

    address: str

    def exists(self, path: str, tag: str) -> bool: ...

    def images(self, path: str) -> list[Image]: ...

    def delete(self, path: str) -> None: ...


@dataclass(frozen=True)
class Settings:
    """How containers reach the emulator: SPCS injects these as SNOWFLAKE_* variables and a token file.
    `front_port` is where the front really listens (the backend forwards `snowflake_port` to it); `trust` is
    the bundle of roots, the local CA's included, that containers verify it with."""

    account: str
    snowflake_host: str
    snowflake_port: int
    front_port: int
    extra_hosts: dict[str, str] = field(default_factory=dict)
    trust: Path | None = None


@dataclass
class ComputePool:
    name: str
    min_nodes: int
    max_nodes: int
    instance_family: str
    auto_resume: bool = True
    auto_suspend_secs: int = 3600
    comment: str | None = None
    owner: str = "ACCOUNTADMIN"
    suspended: bool = False
    created_on: datetime = field(default_factory=now)
    resumed_on: datetime = field(default_factory=now)
    updated_on: datetime = field(default_factory=now)


@dataclass
class ImageRepository:
    database: str
    schema: str
    name: str
    owner: str
    comment: str | None = None
    created_on: datetime = field(default_factory=now)


@dataclass
class Outcome:
    """How a job ended: its containers' last states."""

    status: str  # DONE or FAILED
    containers: list[dict[str, Any]]


def new_generation() -> str:
    return uuid.uuid4().hex[:12]


@dataclass
class Service:
    database: str
    schema: str
    name: str
    compute_pool: str
    spec: str  # the specification text as given (YAML or JSON)
    owner: str
    is_job: bool = False
    is_async_job: bool = False
    replicas: int = 1  # a job's instances (EXECUTE JOB SERVICE ... REPLICAS)
    min_instances: int = 1
    max_instances: int = 1
    auto_resume: bool = True
    auto_suspend_secs: int = 0  # idle this long (no service-function call), it suspends; 0: never
    min_ready_instances: int | None = None  # None: MIN_INSTANCES, as Snowflake shows it
    log_level: str | None = None  # the service's LOG_LEVEL parameter, when set on it
    query_warehouse: str | None = None
    external_access_integrations: list[str] = field(default_factory=list)
    comment: str | None = None
    suspended: bool = False
    failure: str | None = None  # why its containers could not start
    outcome: Outcome | None = None  # a job's end
    external: dict[str, str] = field(default_factory=dict)  # endpoint -> URL of a service running elsewhere
    ingress: dict[str, int] = field(default_factory=dict)  # public endpoint -> its ingress port, kept for life
    created_on: datetime = field(default_factory=now)
    updated_on: datetime = field(default_factory=now)
    resumed_on: datetime | None = None
    suspended_on: datetime | None = None
    generation: str = field(default_factory=new_generation)  # this object's (and spec's), not its name's

    @property
    def object_name(self) -> ObjectName:
        return ObjectName(self.database, self.schema, self.name)

    @property
    def key(self) -> str:
        return str(self.object_name)

    @property
    def workload_key(self) -> str:
        """What runs for this service on the backend: a service dropped and created again under the same name
        is another workload, so that a late start or stop of one never touches the other."""
        return f"{self.key}#{self.generation}"

    @property
    def instances(self) -> int:
        """How many instances run: a job's replicas, a service's MIN_INSTANCES (the local SPCS doesn't scale
        by load)."""
        return self.replicas if self.is_job else self.min_instances

    def instance_key(self, index: int) -> str:
        """What runs for one instance on the backend."""
        return f"{self.workload_key}/{index}"

    def instance_of(self, key: str) -> int | None:
        """The instance a backend's key is of, when it is one of this service's."""
        workload, _, index = key.rpartition("/")
        return int(index) if workload == self.workload_key and index.isdigit() else None

    @property
    def document(self) -> dict:
        return as_spcs_reads(yaml.safe_load(self.spec))

    @property
    def executes_as_caller(self) -> bool:
        """capabilities.securityContext.executeAsCaller: its endpoints get the caller's token, and its containers
        may log in as the caller with it (caller's rights)."""
        context = ((self.document.get("capabilities") or {}).get("securityContext")) or {}
        return context.get("executeAsCaller") is True

    @property
    def public_endpoints(self) -> list[str]:
        return [str(e["name"]) for e in self.document["spec"].get("endpoints") or [] if e.get("public")]

    @property
    def spec_digest(self) -> str:
        return hashlib.sha256(self.spec.encode()).hexdigest()

    @property
    def dns_name(self) -> str:
        """SPCS's DNS name: `echo_service` is `echo-service`, which resolves within its schema, and in full
        `echo-service.<schema hash>.svc.spcs.internal`."""
        schema_hash = hashlib.sha256(f"{self.database}.{self.schema}".encode()).hexdigest()[:4]
        return f"{self.name.lower().replace('_', '-')}.{schema_hash}.svc.spcs.internal"


@dataclass
class ServiceFunction:
    database: str
    schema: str
    name: str
    arguments: list[tuple[str, str]]  # (name, type)
    returns: str
    service: str  # DATABASE.SCHEMA.NAME
    endpoint: str
    path: str
    owner: str
    max_batch_rows: int | None = None
    max_batch_retries: int = 3
    on_batch_failure: str = "ABORT"
    batch_timeout_secs: int = 604800
    context_headers: list[str] = field(default_factory=list)
    comment: str | None = None
    created_on: datetime = field(default_factory=now)

    @property
    def signature(self) -> str:
        return f"{self.name}({', '.join(kind for _, kind in self.arguments)})"


@dataclass(frozen=True)
class Record:
    """A row for the account's event table: a line a container logged, a platform event or a platform metric of
    one."""

    at: datetime
    database: str
    schema: str
    service: str
    compute_pool: str
    instance: int
    container: str
    kind: str  # LOG, EVENT or METRIC
    value: Any  # a log's line; an event's details; a metric's value
    severity: str = "INFO"
    name: str | None = None  # an event's name, such as CONTAINER.STATUS_CHANGE, or a metric's
    unit: str | None = None  # a metric's


DEFAULT_EVENT_TABLE = "SNOWFLAKE.TELEMETRY.EVENTS"  # the account's, as Snowflake makes it


@dataclass
class ServiceView:
    """A service with its live status, as SHOW and DESCRIBE show it."""

    service: Service
    status: str
    containers: list[ContainerState]


OBJECT_TYPES = {"compute_pools": ComputePool, "repositories": ImageRepository, "services": Service}


# --- helpers --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Capacity:
    memory: int | None  # bytes
    nano_cpus: int | None
    family: str

    def memory_within(self, what: str, size: int) -> int:
        """A memory limit or a memory volume, refused when a node of the instance family has less memory."""
        if self.memory is not None and size > self.memory:
            raise invalid(f"Invalid spec: the {what} ({size / 2**30:g} GiB) is more than a {self.family} node has "
                          f"({self.memory / 2**30:g} GiB).")  # fmt: skip
        return size

    def cpus_within(self, nano_cpus: int) -> int:
        if self.nano_cpus is not None and nano_cpus > self.nano_cpus:
            raise invalid(f"Invalid spec: the cpu limit ({nano_cpus / 10**9:g}) is more than a {self.family} node "
                          f"has ({self.nano_cpus / 10**9:g} vCPUs).")  # fmt: skip
        return nano_cpus


# What ALTER ... UNSET puts back: each property's default, as CREATE gives it.
SERVICE_DEFAULTS: dict[str, Any] = {
    "MIN_INSTANCES": 1,
    "MAX_INSTANCES": 1,
    "AUTO_RESUME": True,
    "AUTO_SUSPEND_SECS": 0,
    "MIN_READY_INSTANCES": None,
    "QUERY_WAREHOUSE": None,
    "EXTERNAL_ACCESS_INTEGRATIONS": [],
    "COMMENT": None,
    "LOG_LEVEL": None,
}
POOL_DEFAULTS: dict[str, Any] = {"AUTO_RESUME": True, "AUTO_SUSPEND_SECS": 3600, "COMMENT": None}


def known(names: dict[str, Any], defaults: dict[str, Any], kind: str) -> None:
    """ALTER ... SET or UNSET names only properties the object has."""
    for name in names:
        if name not in defaults:
            raise invalid(f"SQL compilation error:\ninvalid property '{name}' for '{kind}'")


def unset(obj: Any, names: dict[str, Any], defaults: dict[str, Any], kind: str) -> None:
    """ALTER ... UNSET: each named property back to its default."""
    known(names, defaults, kind)
    for name in names:
        value = defaults[name]
        setattr(obj, name.lower(), list(value) if isinstance(value, list) else value)


# A log line's timestamp, as the backend gives it (Docker's RFC 3339, to the nanosecond), and a space.
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z ", re.MULTILINE)


def stamp_of(line: str) -> datetime:
    """When a kept log line was written; the earliest time for a line without a timestamp (kept before)."""
    found = STAMP.match(line)
    if not found:
        return datetime.min.replace(tzinfo=UTC)
    return parse_timestamp(found.group(0).strip())


def listed(value: Any) -> list[Any]:
    """An option that takes a list: `= (a, b)`, `= a` or `= ()`."""
    return value if isinstance(value, list) else [] if value is None else [value]


def file_name(key: str) -> str:
    """An object's name as one file name: readable, and nothing in it ever a path (no '/', never '..')."""
    readable = re.sub(r"[^A-Za-z0-9_.-]", "_", key)[:80].lstrip(".")
    return f"{readable}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def already_dropped(kind: str, name: str, if_exists: bool) -> str:
    """DROP of something that isn't there: fine with IF EXISTS, else Snowflake's error."""
    if if_exists:
        return f"Drop statement executed successfully ({name} already dropped)."
    raise does_not_exist(kind, name)


def containers_of(service: Service) -> list[dict[str, Any]]:
    return list(service.document["spec"]["containers"])


def outcome_problems(outcome: Outcome) -> str:
    failed = [c for c in outcome.containers if c["status"] != "DONE"]
    return " ".join(
        f"Container {c['name']} exited with code {c['exit_code']}."
        if c.get("exit_code") is not None
        else f"Container {c['name']}: {c['message']}"
        for c in failed
    )


def spec_env(env: dict[str, Any] | None) -> dict[str, str]:
    """A spec's env as SPCS gives it to the container: every value a string."""
    return {name: value if isinstance(value, str) else json.dumps(value) for name, value in (env or {}).items()}


def memory_bytes(value: Any) -> int:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]i?)?", str(value))
    if not match:
        raise invalid(f"Invalid spec: memory '{value}' needs a unit, such as 512Mi or 2Gi.")
    return int(float(match[1]) * MEMORY_UNITS[match[2] or ""])


def nano_cpus(value: Any) -> int:
    text = str(value)
    cpus = float(text[:-1]) / 1000 if text.endswith("m") else float(text)
    return int(cpus * 10**9)


def positive(options: dict[str, Any], key: str, default: int | None = None, allow_zero: bool = False) -> int:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
        least = "0" if allow_zero else "1"
        raise invalid(f"SQL compilation error:\n{key} must be a whole number of {least} or more, got {value!r}.")
    return value


LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "OFF")


def log_level(options: dict[str, Any]) -> str | None:
    """LOG_LEVEL = 'INFO' and the like, in uppercase; None when not given."""
    value = options.get("LOG_LEVEL")
    if value is None:
        return None
    if not isinstance(value, str) or value.upper() not in LOG_LEVELS:
        raise invalid(f"SQL compilation error:\ninvalid value [{value}] for parameter 'LOG_LEVEL'")
    return value.upper()


def flag(options: dict[str, Any], key: str, default: bool) -> bool:
    value = options.get(key, default)
    if not isinstance(value, bool):
        raise invalid(f"SQL compilation error:\n{key} must be TRUE or FALSE, got {value!r}.")
    return value


def function_key(database: str, schema: str, name: str, arguments: list[tuple[str, str]] | list[list[str]]) -> str:
    """Functions overload on their argument types: MY_ECHO_UDF(VARCHAR)."""
    types = ",".join(base_type(kind) for _, kind in arguments)
    return f"{database}.{schema}.{name}({types})"


TYPE_SYNONYMS = {"STRING": "VARCHAR", "TEXT": "VARCHAR", "CHAR": "VARCHAR", "DOUBLE": "FLOAT", "REAL": "FLOAT"}
TYPE_SYNONYMS |= dict.fromkeys(("INT", "INTEGER", "BIGINT", "SMALLINT", "DECIMAL", "NUMERIC"), "NUMBER")


def base_type(kind: str) -> str:
    """VARCHAR(100) and STRING are both VARCHAR when a function is looked up."""
    word = kind.split("(")[0].strip().upper()
    return TYPE_SYNONYMS.get(word, word)


def key_of(obj: Any) -> str:
    if isinstance(obj, ComputePool):
        return obj.name
    return f"{obj.database}.{obj.schema}.{obj.name}"


def encode(obj: Any) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(obj), default=lambda value: value.isoformat()))


def decode(cls: type, record: dict[str, Any]) -> Any:
    values = {}
    for item in dataclasses.fields(cls):
        if item.name not in record:
            continue
        value = record[item.name]
        if value is not None and item.name.endswith("_on"):
            value = datetime.fromisoformat(value)
        elif item.name == "outcome" and value is not None:
            value = Outcome(**value)
        elif item.name == "arguments":
            value = [tuple(pair) for pair in value]
        values[item.name] = value
    return cls(**values)


def decode_state(record: dict[str, Any]) -> ContainerState:
    started = record.get("started")
    record = {key: value for key, value in record.items() if key != "ports"}  # earlier versions': gone anyway
    urls = {int(port): url for port, url in (record.get("urls") or {}).items()}
    return ContainerState(**{**record, "started": started and datetime.fromisoformat(started), "urls": urls})
