"""What the catalog asks a backend to run, and what a backend reports back: no SQL, no Docker."""

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol

ContainerStatus = Literal["PENDING", "READY", "DONE", "FAILED"]


@dataclass(frozen=True)
class Probe:
    port: int
    path: str
    period_seconds: int = 5
    failure_threshold: int = 3


@dataclass(frozen=True)
class File:
    """A file written into a container before it starts (never a file on the host): a secret, the session
    token, a connections.toml. Owned by the image's user."""

    text: str = field(repr=False)
    mode: int = 0o444


@dataclass(frozen=True)
class Container:
    """One container of a spec, resolved: its image is a full registry reference."""

    name: str
    image: str
    env: dict[str, str] = field(repr=False)  # secrets' values too: never shown
    command: list[str] | None = None  # replaces the image's ENTRYPOINT
    args: list[str] | None = None  # replaces the image's CMD
    readiness: Probe | None = None
    liveness: Probe | None = None
    memory: int | None = None  # bytes
    nano_cpus: int | None = None
    tmpfs: dict[str, int] = field(default_factory=dict)  # mount path -> size in bytes
    volumes: dict[str, str] = field(default_factory=dict)  # volume name -> mount path (shared in the workload)
    block: dict[str, str] = field(default_factory=dict)  # block volume id (service:volume:instance) -> mount path
    binds: dict[str, str] = field(default_factory=dict)  # a stage's folder on the host -> mount path
    owners: dict[str, tuple[int, int]] = field(default_factory=dict)  # mount path -> its uid and gid
    files: dict[str, File] = field(default_factory=dict)  # absolute path in the container -> its file


@dataclass(frozen=True)
class Workload:
    """An instance of a service or a job. Its containers share one network namespace, as in SPCS: one
    set of DNS names on the schema's network, and its ports reachable by the local SPCS alone.
    From it they reach the Snowflake front (SNOWFLAKE_HOST, port 443), the services of their schema, and the
    `egress` ("host:port", "*.domain:port", "0.0.0.0:port") their integrations allow; nothing else."""

    key: str  # unique and stable: an instance of DATABASE.SCHEMA.NAME
    network: str  # one per schema, so that services find each other by DNS name
    hostnames: tuple[str, ...]  # the service's DNS names (echo-service, in full too): its READY instances
    job: bool
    containers: tuple[Container, ...]
    ports: tuple[int, ...] = ()
    mounts: dict[str, str] = field(default_factory=dict)  # container path -> host file, read-only
    extra_hosts: dict[str, str] = field(default_factory=dict)  # name -> address, as in /etc/hosts
    front: tuple[int, int] = (443, 443)  # the Snowflake front: the port containers use, and where it listens
    egress: tuple[str, ...] = ()

    @property
    def instance_hostnames(self) -> tuple[str, ...]:
        """instances.<each DNS name>: every instance, READY or not."""
        return tuple(f"instances.{name}" for name in self.hostnames)


@dataclass(frozen=True)
class ContainerState:
    name: str
    status: ContainerStatus
    message: str
    image: str
    exit_code: int | None = None
    digest: str | None = None
    started: datetime | None = None
    restarts: int = 0
    last_restart: datetime | None = None
    urls: dict[int, str] = field(default_factory=dict)  # container port -> where the local SPCS reaches it
    ip: str | None = None
    instance: int = 0  # of its service, or its job's replica


@dataclass(frozen=True)
class Usage:
    """What a running container has used: CPU time since it started, and memory now."""

    cpu_seconds: float
    memory_bytes: int


class BackendError(Exception):
    """The backend could not do what was asked; the message says why in one line."""


class Backend(Protocol):
    """Runs workloads. Status comes from what runs, so it is right after a restart too."""

    def start(self, workload: Workload) -> None: ...

    def states(self, key: str) -> list[ContainerState] | None:
        """Each container's state; None when nothing of the workload runs here."""
        ...

    def wait(self, key: str, cancelled: threading.Event | None = None) -> list[ContainerState]:
        """Block until every container of a job has exited, or until `cancelled` is set."""
        ...

    def logs(
        self, key: str, container: str, lines: int, since: datetime | None = None, previous: bool = False,
        stderr_only: bool = False,
    ) -> str:  # fmt: skip
        """The container's last `lines` lines (after `since`), each after its RFC 3339 timestamp and a space; with
        `previous`, of the run before its last restart; with `stderr_only`, what it wrote to stderr."""
        ...

    def set_egress(self, key: str, egress: tuple[str, ...]) -> None:
        """Where a running workload may connect from now on (Workload.egress)."""
        ...

    def usage(self, key: str) -> dict[str, Usage]:
        """What each running container of the workload uses, by its name in the spec."""
        ...

    def build(self, files: dict[str, bytes], reference: str, log: Callable[[str], None]) -> bool:
        """Build the image of a build context (path -> content, a Dockerfile at its top) and push it as
        `reference`, each line of its output to `log` (after its timestamp) as it comes: whether it succeeded."""
        ...

    def remove(self, key: str) -> None: ...

    def drop_volumes(self, service: str) -> None:
        """Delete the block volumes of a dropped service (they outlive its instances until then)."""
        ...

    def keys(self) -> set[str]: ...


def parse_timestamp(text: str) -> datetime:
    """An RFC 3339 timestamp (Docker's, to the nanosecond, or snow's `--since`), to the microsecond; naive ones
    are UTC."""
    parsed = datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", text.replace("Z", "+00:00")))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def stamped(text: str, at: datetime | None = None) -> str:
    """Each line of `text` after a timestamp as Docker writes one in logs (RFC 3339, UTC, with a Z)."""
    stamp = (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return "\n".join(f"{stamp} {line}" for line in text.splitlines())
