"""The local SPCS's objects: compute pools, image repositories, services (jobs too) and service functions.

It keeps Snowflake's rules for them (IF NOT EXISTS, OR REPLACE, IF EXISTS, the errors for a missing
or a duplicate object) and persists them as JSON, so they outlive the emulator. It knows no SQL: the
statement layer calls it. Containers run on a `Backend`; images live in an `ImageStore`.
"""

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import astuple, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import yaml

from spcs_local.emulator import LOCAL_ONLY
from spcs_local.emulator.access import Access
from spcs_local.emulator.results import SnowflakeError, already_exists, does_not_exist, invalid, unsupported
from spcs_local.emulator.secret_store import SecretStore, secret_name
from spcs_local.emulator.workload import Backend, BackendError, Container, ContainerState, Probe, Workload
from spcs_local.lint import ERROR, as_spcs_reads, lint

TOKEN_PATH = "/snowflake/session/token"  # where SPCS puts a container's OAuth token
LOGS_TAIL_DEFAULT = 100_000
INTERRUPTED = "Interrupted: the local SPCS stopped while the job ran."
REGISTRY_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")  # of an image's path, as registries take it
CANCELLED = "Cancelled: the statement that ran the job was cancelled."
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
    """How containers reach the emulator: SPCS injects these as SNOWFLAKE_* variables and a token file."""

    account: str
    snowflake_host: str
    snowflake_port: int
    extra_hosts: dict[str, str] = field(default_factory=dict)


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
    min_instances: int = 1
    max_instances: int = 1
    auto_resume: bool = True
    query_warehouse: str | None = None
    external_access_integrations: list[str] = field(default_factory=list)
    comment: str | None = None
    suspended: bool = False
    failure: str | None = None  # why its containers could not start
    outcome: Outcome | None = None  # a job's end
    external: dict[str, str] = field(default_factory=dict)  # endpoint -> URL of a service running elsewhere
    created_on: datetime = field(default_factory=now)
    updated_on: datetime = field(default_factory=now)
    resumed_on: datetime | None = None
    suspended_on: datetime | None = None
    generation: str = field(default_factory=lambda: uuid.uuid4().hex[:12])  # this object's, not its name's

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
    def document(self) -> dict:
        return as_spcs_reads(yaml.safe_load(self.spec))

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


@dataclass
class ServiceView:
    """A service with its live status, as SHOW and DESCRIBE show it."""

    service: Service
    status: str
    containers: list[ContainerState]


OBJECT_TYPES = {"compute_pools": ComputePool, "repositories": ImageRepository, "services": Service}


class Catalog:
    def __init__(self, path: Path, backend: Backend | None, images: ImageStore | None, settings: Settings) -> None:
        self.path, self.backend, self.image_store, self.settings = path, backend, images, settings
        self.lock = threading.RLock()
        self.compute_pools: dict[str, ComputePool] = {}
        self.repositories: dict[str, ImageRepository] = {}
        self.services: dict[str, Service] = {}
        self.functions: dict[str, ServiceFunction] = {}
        self.on_functions_changed: Callable[[], None] = lambda: None
        self.tokens: dict[str, str] = {}  # workload key -> the OAuth token its containers log in with
        self.workload_locks: dict[str, threading.Lock] = {}
        self.secrets = SecretStore(path.parent / "secrets.json")  # apart from the catalog's file: mode 0600
        self.access = Access(path.parent / "access.json")
        self.load()

    # --- persistence --------------------------------------------------------------------------

    def load(self) -> None:
        if not self.path.exists():
            return
        saved = json.loads(self.path.read_text())
        for kind, cls in OBJECT_TYPES.items():
            table = getattr(self, kind)
            for record in saved.get(kind, []):
                obj = decode(cls, record)
                table[key_of(obj)] = obj
        for service in self.services.values():
            token_file = self.token_file(service)
            if token_file.exists():
                self.tokens[service.workload_key] = token_file.read_text()
        for record in saved.get("functions", []):
            function = decode(ServiceFunction, record)
            self.functions[function_key(function.database, function.schema, function.name, function.arguments)] = (
                function
            )

    def save(self) -> None:
        """Write the whole catalog atomically: a crash leaves the old file or the new one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        state = {kind: [encode(o) for o in getattr(self, kind).values() if not getattr(o, "external", None)]
                 for kind in OBJECT_TYPES}  # fmt: skip
        state["functions"] = [encode(function) for function in self.functions.values()]
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(state, indent=1))
        os.replace(temporary, self.path)

    # --- compute pools ------------------------------------------------------------------------

    def create_compute_pool(
        self, name: str, options: dict[str, Any], owner: str, if_not_exists: bool, or_replace: bool
    ) -> str:
        for required in ("MIN_NODES", "MAX_NODES", "INSTANCE_FAMILY"):
            if required not in options:
                raise invalid(f"SQL compilation error:\nMissing option '{required}' for CREATE COMPUTE POOL.")
        pool = ComputePool(
            name,
            min_nodes=positive(options, "MIN_NODES"),
            max_nodes=positive(options, "MAX_NODES"),
            instance_family=str(options["INSTANCE_FAMILY"]).upper(),
            auto_resume=flag(options, "AUTO_RESUME", True),
            auto_suspend_secs=positive(options, "AUTO_SUSPEND_SECS", 3600, allow_zero=True),
            comment=options.get("COMMENT"),
            owner=owner,
            suspended=flag(options, "INITIALLY_SUSPENDED", False),
        )
        if pool.max_nodes < pool.min_nodes:
            raise invalid("SQL compilation error:\nMAX_NODES must be greater than or equal to MIN_NODES.")
        if pool.instance_family not in INSTANCE_FAMILIES:
            raise invalid(
                f"SQL compilation error:\nInvalid value '{pool.instance_family}' for INSTANCE_FAMILY: one of "
                f"{', '.join(INSTANCE_FAMILIES)}."
            )
        with self.lock:
            if name in self.compute_pools:
                if if_not_exists:
                    return f"{name} already exists, statement succeeded."
                if not or_replace:
                    raise already_exists(name)
                self.drop_compute_pool(name, if_exists=True)
            self.compute_pools[name] = pool
            self.save()
        return f"Compute Pool {name} successfully created."

    def compute_pool(self, name: str) -> ComputePool:
        if name not in self.compute_pools:
            raise does_not_exist("Compute pool", name)
        return self.compute_pools[name]

    def compute_pool_state(self, pool: ComputePool) -> str:
        if pool.suspended:
            return "SUSPENDED"
        running = any(view.status in ("PENDING", "RUNNING") for view in self.services_in_pool(pool.name))
        return "ACTIVE" if running else "IDLE"

    def services_in_pool(self, pool: str) -> list[ServiceView]:
        return [self.view(service) for service in list(self.services.values()) if service.compute_pool == pool]

    def alter_compute_pool(self, name: str, action: str, options: dict[str, Any], if_exists: bool) -> str:
        with self.lock:
            if if_exists and name not in self.compute_pools:
                return "Statement executed successfully."
            pool = self.compute_pool(name)
            if action == "STOP ALL":  # drops every service and job in the pool, as in SPCS
                for service in [s for s in self.services.values() if s.compute_pool == name]:
                    self.drop_service(service.object_name, if_exists=True)
            elif action == "SUSPEND":
                pool.suspended = True
                for service in [s for s in self.services.values() if s.compute_pool == name and not s.is_job]:
                    self.suspend_service(service)
            elif action == "RESUME":
                pool.suspended, pool.resumed_on = False, now()
                for service in [s for s in self.services.values() if s.compute_pool == name and s.suspended]:
                    if service.auto_resume:
                        self.resume_service(service)
            else:  # SET
                for option, attribute in (("MIN_NODES", "min_nodes"), ("MAX_NODES", "max_nodes")):
                    if option in options:
                        setattr(pool, attribute, positive(options, option))
                if "AUTO_RESUME" in options:
                    pool.auto_resume = flag(options, "AUTO_RESUME", True)
                if "AUTO_SUSPEND_SECS" in options:
                    pool.auto_suspend_secs = positive(options, "AUTO_SUSPEND_SECS", allow_zero=True)
                if "COMMENT" in options:
                    pool.comment = options["COMMENT"]
            pool.updated_on = now()
            self.save()
        return "Statement executed successfully."

    def drop_compute_pool(self, name: str, if_exists: bool) -> str:
        with self.lock:
            if name not in self.compute_pools:
                return already_dropped("Compute pool", name, if_exists)
            in_use = sorted(s.name for s in self.services.values() if s.compute_pool == name)
            if in_use:
                raise invalid(
                    f"Cannot drop compute pool {name}: it still runs {', '.join(in_use)}. "
                    f"Stop them first: ALTER COMPUTE POOL {name} STOP ALL."
                )
            del self.compute_pools[name]
            self.save()
        return f"{name} successfully dropped."

    # --- image repositories -------------------------------------------------------------------

    def repository_url(self, repository: ImageRepository) -> str:
        """host:port/db/schema/repository, lowercase, as `docker push` names it (no scheme)."""
        path = f"{repository.database}/{repository.schema}/{repository.name}".lower()
        return f"{self.registry().address}/{path}" if self.image_store else path

    def create_image_repository(
        self, name: ObjectName, owner: str, comment: str | None, if_not_exists: bool, or_replace: bool
    ) -> str:
        # The repository's URL path is its database, schema and name in lowercase: each must be one.
        bad = [part for part in astuple(name) if not REGISTRY_COMPONENT.fullmatch(part.lower())]
        if bad:
            raise invalid(
                f"SQL compilation error:\nThe local SPCS names images /<database>/<schema>/<repository>/ in lowercase: "
                f"{bad[0]!r} can't be part of that path (letters, digits, and '.', '_' or '-' between them)."
            )
        with self.lock:
            if str(name) in self.repositories:
                if if_not_exists:
                    return f"{name.name} already exists, statement succeeded."
                if not or_replace:
                    raise already_exists(name.name)
            self.repositories[str(name)] = ImageRepository(name.database, name.schema, name.name, owner, comment)
            self.save()
        return f"Image Repository {name.name} successfully created."

    def repository(self, name: ObjectName) -> ImageRepository:
        if str(name) not in self.repositories:
            raise does_not_exist("Image repository", name.name)
        return self.repositories[str(name)]

    def drop_image_repository(self, name: ObjectName, if_exists: bool) -> str:
        with self.lock:
            if str(name) not in self.repositories:
                return already_dropped("Image repository", name.name, if_exists)
            repository = self.repositories.pop(str(name))
            self.save()
        if self.image_store:  # dropping a repository drops its images, as in Snowflake
            self.image_store.delete(self.repository_path(repository))
        return f"{name.name} successfully dropped."

    def images(self, name: ObjectName) -> list[Image]:
        return self.registry().images(self.repository_path(self.repository(name)))

    @staticmethod
    def repository_path(repository: ImageRepository) -> str:
        return f"{repository.database}/{repository.schema}/{repository.name}".lower()

    def registry(self) -> ImageStore:
        if self.image_store is None:
            raise invalid("The local SPCS runs without an image registry here: start it with `make local-up`.")
        return self.image_store

    # --- services and jobs --------------------------------------------------------------------

    def create_service(
        self, name: ObjectName, pool: str, spec: str, options: dict[str, Any], owner: str, if_not_exists: bool
    ) -> str:
        with self.lock:
            if str(name) in self.services:
                if if_not_exists:
                    return f"{name.name} already exists, statement succeeded."
                raise already_exists(name.name)
            service = self.new_service(name, pool, spec, options, owner, is_job=False)
            service.resumed_on = now()
            self.services[service.key] = service
            self.save()
        self.start_in_background(service)
        return f"Service {name.name} successfully created."

    def execute_job(
        self, name: ObjectName, pool: str, spec: str, options: dict[str, Any], owner: str, asynchronous: bool,
        cancelled: threading.Event | None = None,
    ) -> str:  # fmt: skip
        """Run a job; unless asynchronous, wait for its end. A FAILED job is an error naming its exit codes; a
        job whose statement is cancelled stops, FAILED, and the statement ends as Snowflake's "canceled"."""
        with self.lock:
            if str(name) in self.services:
                raise already_exists(name.name)
            job = self.new_service(name, pool, spec, options, owner, is_job=True)
            job.is_async_job = asynchronous
            self.services[job.key] = job
            self.save()
        if asynchronous:
            threading.Thread(target=self.run_job, args=(job,), daemon=True).start()
            return f"Job {name.name} successfully started."
        outcome = self.run_job(job, cancelled)
        if cancelled is not None and cancelled.is_set():
            raise SnowflakeError("SQL execution canceled", "000604", "57014")
        if outcome.status != "DONE":
            raise SnowflakeError(
                f"Job {name.name} completed with status: FAILED. {outcome_problems(outcome)} "
                f"See SYSTEM$GET_SERVICE_LOGS('{name.name}', 0, '<container>').",
                "395028",
                "XX000",
            )
        return f"Job {name.name} completed successfully with status: DONE."

    def new_service(
        self, name: ObjectName, pool: str, spec: str, options: dict[str, Any], owner: str, is_job: bool
    ) -> Service:
        compute_pool = self.compute_pool(pool)
        if compute_pool.suspended:
            if not compute_pool.auto_resume:
                raise invalid(f"Compute pool {pool} is suspended and has AUTO_RESUME = FALSE: resume it first.")
            compute_pool.suspended, compute_pool.resumed_on = False, now()
        service = Service(
            name.database,
            name.schema,
            name.name,
            compute_pool=pool,
            spec=spec,
            owner=owner,
            is_job=is_job,
            min_instances=positive(options, "MIN_INSTANCES", 1),
            max_instances=positive(options, "MAX_INSTANCES", 1),
            auto_resume=flag(options, "AUTO_RESUME", True),
            query_warehouse=options.get("QUERY_WAREHOUSE"),
            external_access_integrations=self.access.check(listed(options.get("EXTERNAL_ACCESS_INTEGRATIONS"))),
            comment=options.get("COMMENT"),
        )
        if service.max_instances < service.min_instances:
            raise invalid("SQL compilation error:\nMAX_INSTANCES must be greater than or equal to MIN_INSTANCES.")
        self.workload(service)  # checks the spec and its images now, so that CREATE fails instead of the start
        return service

    def start_in_background(self, service: Service) -> None:
        threading.Thread(target=self.start, args=(service,), daemon=True).start()

    def start(self, service: Service) -> bool:
        """Start the service's containers, unless it was dropped or suspended meanwhile; a failure is kept as its
        status message. Starts and stops of one workload take turns."""
        try:
            with self.workload_lock(service):
                if self.services.get(service.key) is service and not service.suspended:
                    workload = self.workload(service)
                    files = {**workload.files, TOKEN_PATH: self.issue_token(service)}
                    self.containers_backend().start(dataclasses.replace(workload, files=files))
        except (BackendError, SnowflakeError) as error:
            with self.lock:
                service.failure = str(error)
                self.save()
            return False
        return True

    def workload_lock(self, service: Service) -> threading.Lock:
        with self.lock:
            return self.workload_locks.setdefault(service.workload_key, threading.Lock())

    def stop(self, service: Service) -> None:
        """Remove what runs for the service, once a start under way has finished."""
        if self.backend:
            with self.workload_lock(service):
                self.backend.remove(service.workload_key)

    def run_job(self, job: Service, cancelled: threading.Event | None = None) -> Outcome:
        """Start a job and wait for its containers to exit, or for its statement to be cancelled."""
        if self.start(job):
            return self.finish_job(job, cancelled)
        return self.record_outcome(job, self.failed_states(job, job.failure or ""))

    def finish_job(self, job: Service, cancelled: threading.Event | None = None) -> Outcome:
        """Wait for a job's containers; when they went with the emulator's stop, the job is FAILED."""
        states = self.containers_backend().wait(job.workload_key, cancelled) or self.failed_states(job, INTERRUPTED)
        if cancelled is not None and cancelled.is_set():
            outcome = self.record_outcome(job, self.failed_states(job, CANCELLED))
            self.stop(job)
            return outcome
        return self.record_outcome(job, states)

    def record_outcome(self, job: Service, states: list[ContainerState]) -> Outcome:
        """Keep how a job ended, and its logs, beyond the life of its containers."""
        logs_dir = self.job_logs_dir(job)
        logs_dir.mkdir(parents=True, exist_ok=True)
        for state in states:
            text = self.backend.logs(job.workload_key, state.name, LOGS_TAIL_DEFAULT) if self.backend else ""
            (logs_dir / f"{state.name}.log").write_text(text)
        outcome = Outcome(
            "DONE" if all(state.status == "DONE" for state in states) else "FAILED",
            [encode(state) for state in states],
        )
        with self.lock:
            job.outcome, job.updated_on = outcome, now()
            if job.key in self.services:
                self.save()
        return outcome

    @staticmethod
    def failed_states(service: Service, message: str) -> list[ContainerState]:
        return [ContainerState(c["name"], "FAILED", message, "") for c in containers_of(service)]

    def job_logs_dir(self, job: Service) -> Path:
        return self.path.parent / "job-logs" / file_name(job.key)

    def token_file(self, service: Service) -> Path:
        return self.path.parent / "tokens" / file_name(service.workload_key)

    def issue_token(self, service: Service) -> str:
        """The workload's OAuth token file, as SPCS mounts it: a random token, valid until the service is dropped."""
        file = self.token_file(service)
        file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if service.workload_key not in self.tokens or not file.exists():
            self.tokens[service.workload_key] = secrets.token_urlsafe(32)
            file.touch(mode=0o600)
            file.write_text(self.tokens[service.workload_key])
            file.chmod(0o644)  # the folder is the host's lock; a container's user of any uid reads its own mount
        return str(file.resolve())

    def valid_token(self, token: str) -> bool:
        """Whether a container of a service or job that exists logs in with this token."""
        return any(secrets.compare_digest(token.encode(), known.encode()) for known in list(self.tokens.values()))

    def service(self, name: ObjectName) -> Service:
        if str(name) not in self.services:
            raise does_not_exist("Service", name.name)
        return self.services[str(name)]

    def drop_contents(self, database: str, schema: str | None = None) -> None:
        """What a dropped database (or schema) held: its services and jobs stop, its functions and image
        repositories (with their images) go."""
        held = lambda obj: obj.database == database and schema in (None, obj.schema)  # noqa: E731
        for service in [s for s in list(self.services.values()) if held(s) and not s.external]:
            self.drop_service(service.object_name, if_exists=True)
        with self.lock:
            for key in [key for key, function in self.functions.items() if held(function)]:
                del self.functions[key]
            self.save()
        self.on_functions_changed()
        for repository in [r for r in list(self.repositories.values()) if held(r)]:
            self.drop_image_repository(ObjectName(repository.database, repository.schema, repository.name), True)

    def drop_service(self, name: ObjectName, if_exists: bool) -> str:
        with self.lock:
            if str(name) not in self.services:
                return already_dropped("Service", name.name, if_exists)
            service = self.services.pop(str(name))
            self.save()
        self.stop(service)
        self.tokens.pop(service.workload_key, None)
        self.token_file(service).unlink(missing_ok=True)
        for log in self.job_logs_dir(service).glob("*.log"):
            log.unlink()
        with contextlib.suppress(OSError):
            self.job_logs_dir(service).rmdir()
        return f"{name.name} successfully dropped."

    def alter_service(self, name: ObjectName, action: str, options: dict[str, Any], if_exists: bool) -> str:
        with self.lock:
            if if_exists and str(name) not in self.services:
                return "Statement executed successfully."
            service = self.service(name)
            if action == "SUSPEND":
                self.suspend_service(service)
            elif action == "RESUME":
                self.resume_service(service)
            else:  # SET
                for option in ("MIN_INSTANCES", "MAX_INSTANCES"):
                    if option in options:
                        setattr(service, option.lower(), positive(options, option))
                if "AUTO_RESUME" in options:
                    service.auto_resume = flag(options, "AUTO_RESUME", True)
                for option in ("QUERY_WAREHOUSE", "COMMENT"):
                    if option in options:
                        setattr(service, option.lower(), options[option])
                if "EXTERNAL_ACCESS_INTEGRATIONS" in options:
                    service.external_access_integrations = self.access.check(
                        listed(options["EXTERNAL_ACCESS_INTEGRATIONS"])
                    )
            service.updated_on = now()
            self.save()
        return "Statement executed successfully."

    def suspend_service(self, service: Service) -> None:
        service.suspended, service.suspended_on = True, now()
        self.stop(service)

    def resume_service(self, service: Service) -> None:
        if service.suspended:
            service.suspended, service.failure, service.resumed_on = False, None, now()
            self.start_in_background(service)

    def view(self, service: Service) -> ServiceView:
        """The service's status as SPCS reports it, from its containers as they run now."""
        if service.external:
            return ServiceView(service, "RUNNING", [])
        if service.suspended:
            return ServiceView(service, "SUSPENDED", [])
        if service.outcome:
            return ServiceView(service, service.outcome.status, [decode_state(s) for s in service.outcome.containers])
        if service.failure:
            return ServiceView(service, "FAILED", self.failed_states(service, service.failure))
        states = (self.backend.states(service.workload_key) if self.backend else None) or [
            ContainerState(c["name"], "PENDING", "Waiting to start.", "") for c in containers_of(service)
        ]
        statuses = {state.status for state in states}
        if "FAILED" in statuses:
            status = "FAILED"
        elif "PENDING" in statuses:
            status = "PENDING"
        else:
            status = "RUNNING"  # a job whose containers all exited is recorded by run_job a moment later
        return ServiceView(service, status, states)

    def views(self) -> list[ServiceView]:
        return [self.view(service) for service in list(self.services.values())]

    def wait_for_services(
        self, names: list[ObjectName], seconds: float, cancelled: threading.Event | None = None
    ) -> str:
        """'OK' once every service is READY; an error when one FAILED, when time is up or when cancelled."""
        services = [self.service(name) for name in names]
        deadline = time.monotonic() + seconds
        while True:
            views = [self.view(service) for service in services]
            failed = [view for view in views if view.status == "FAILED"]
            if failed:
                messages = "; ".join(f"{s.name}: {s.message}" for view in failed for s in view.containers)
                raise invalid(f"Service {failed[0].service.name} is FAILED ({messages}).")
            if all(view.status in ("RUNNING", "DONE") for view in views):
                return "OK"
            if time.monotonic() >= deadline:
                statuses = ", ".join(f"{view.service.name} is {view.status}" for view in views)
                raise invalid(f"Timed out after {seconds:g} s waiting for the services to be READY: {statuses}.")
            if (cancelled or threading.Event()).wait(0.2):
                raise SnowflakeError("SQL execution canceled", "000604", "57014")

    def logs(self, name: ObjectName, instance: int, container: str, lines: int) -> str:
        service = self.service(name)
        if instance != 0:
            raise invalid(f"Service {name.name} has no instance {instance}: the local SPCS runs instance 0 only.")
        if container not in [c["name"] for c in containers_of(service)]:
            raise invalid(f"Service {name.name} has no container '{container}'.")
        saved = self.job_logs_dir(service) / f"{container}.log"
        if service.outcome and saved.exists():
            return "\n".join(saved.read_text().splitlines()[-lines:])
        if service.suspended or not self.backend:
            return ""
        return self.backend.logs(service.workload_key, container, lines)

    # --- service functions --------------------------------------------------------------------

    def create_function(self, function: ServiceFunction, or_replace: bool, if_not_exists: bool) -> str:
        service_name = ObjectName(*function.service.split("."))
        service = self.service(service_name)
        endpoints = [e.get("name") for e in service.document["spec"].get("endpoints") or []]
        if function.endpoint.lower() not in [str(e).lower() for e in endpoints]:
            raise invalid(f"SQL compilation error:\nService {service.name} has no endpoint '{function.endpoint}'.")
        key = function_key(function.database, function.schema, function.name, function.arguments)
        types = [base_type(kind) for _, kind in function.arguments]
        for other in self.functions.values():
            if other.name == function.name and [base_type(kind) for _, kind in other.arguments] != types:
                raise unsupported(f"a second signature for {function.name} (there is {other.signature})")
        with self.lock:
            if key in self.functions:
                if if_not_exists:
                    return f"{function.name} already exists, statement succeeded."
                if not or_replace:
                    raise already_exists(function.signature)
            self.functions[key] = function
            self.save()
        self.on_functions_changed()
        return f"Function {function.name} successfully created."

    def drop_function(self, name: ObjectName, types: list[str], if_exists: bool) -> str:
        key = function_key(name.database, name.schema, name.name, [("", kind) for kind in types])
        signature = f"{name.name}({', '.join(types)})"
        with self.lock:
            if key not in self.functions:
                return already_dropped("Function", signature, if_exists)
            del self.functions[key]
            self.save()
        self.on_functions_changed()
        return f"{name.name} successfully dropped."

    def function_named(self, name: ObjectName) -> ServiceFunction | None:
        """The service function of that name (the local SPCS keeps one signature a name)."""
        return next((f for f in self.functions.values() if (f.database, f.schema, f.name) == astuple(name)), None)

    def endpoint_url(self, function: ServiceFunction) -> str:
        """Where the function's service answers on its endpoint, as the host reaches it."""
        service = self.service(ObjectName(*function.service.split(".")))
        if function.endpoint in service.external:
            return service.external[function.endpoint]
        view = self.view(service)
        endpoint = next(e for e in service.document["spec"].get("endpoints") or [] if e["name"] == function.endpoint)
        host_ports = {port: host for state in view.containers for port, host in state.ports.items()}
        if view.status != "RUNNING" or endpoint.get("port") not in host_ports:
            raise invalid(f"Service function {function.name}: service {service.name} is {view.status}, not READY.")
        return f"http://127.0.0.1:{host_ports[endpoint['port']]}"

    def register_external_service(self, name: ObjectName, endpoints: dict[str, str]) -> None:
        """A service that runs elsewhere (`make demo` runs the Echo service as a process): listed, callable
        through its endpoints, never persisted."""
        spec = {"spec": {"containers": [], "endpoints": [{"name": endpoint} for endpoint in endpoints]}}
        self.services[str(name)] = Service(
            name.database, name.schema, name.name, compute_pool="", spec=json.dumps(spec), owner="", external=endpoints
        )

    # --- specs to workloads ---------------------------------------------------------------------

    def workload(self, service: Service) -> Workload:
        """The spec, checked by the spec linter and resolved against the repositories and the registry."""
        errors = [problem for problem in lint(service.spec) if problem.level == ERROR]
        if errors:
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise invalid(f"Invalid spec: {errors[0]}{more}.")
        spec = service.document["spec"]
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        settings = self.settings
        injected = {
            "SNOWFLAKE_ACCOUNT": settings.account,
            "SNOWFLAKE_HOST": settings.snowflake_host,
            "SNOWFLAKE_PORT": str(settings.snowflake_port),
            "SNOWFLAKE_DATABASE": service.database,
            "SNOWFLAKE_SCHEMA": service.schema,
            "SNOWFLAKE_PROTOCOL": "http",  # the emulator speaks plain HTTP; SPCS needs no such variable
            **LOCAL_ONLY,  # nor this one: no probe of cloud metadata leaves the machine
        }
        containers, ports = [], {e["port"] for e in spec.get("endpoints") or [] if "port" in e}
        node = self.node_capacity(service)
        for entry in spec["containers"]:
            probe = entry.get("readinessProbe")
            if probe:
                ports.add(probe["port"])
            limits = (entry.get("resources") or {}).get("limits") or {}
            memory = node.memory_within("memory limit", memory_bytes(limits["memory"])) if "memory" in limits else None
            cpus = node.cpus_within(nano_cpus(limits["cpu"])) if "cpu" in limits else None
            tmpfs, shared = {}, {}
            for mount in entry.get("volumeMounts") or []:
                volume = volumes[mount["name"]]
                source = str(volume.get("source"))
                if source == "memory":
                    size = memory_bytes(volume.get("size", "1Gi"))
                    tmpfs[mount["mountPath"]] = node.memory_within(f"memory volume {volume['name']}", size)
                elif source == "local":
                    shared[volume["name"]] = mount["mountPath"]
                else:
                    raise unsupported(f"volumes with source {source}")
            secret_env, secret_files = self.container_secrets(service, entry.get("secrets") or [])
            containers.append(
                Container(
                    name=entry["name"],
                    image=self.image_reference(entry["image"]),
                    env={**injected, **spec_env(entry.get("env")), **secret_env},
                    command=entry.get("command"),
                    args=entry.get("args"),
                    readiness=Probe(probe["port"], probe["path"]) if probe else None,
                    memory=memory or node.memory,
                    # Docker grants no more CPUs than the machine has.
                    nano_cpus=min(cpus or node.nano_cpus or 0, (os.cpu_count() or 1) * 10**9) or None,
                    tmpfs=tmpfs,
                    volumes=shared,
                    secret_files=secret_files,
                )
            )
        return Workload(
            key=service.workload_key,
            network=f"{service.database}-{service.schema}".lower(),
            hostnames=(service.dns_name.split(".")[0], service.dns_name),
            job=service.is_job,
            containers=tuple(containers),
            ports=tuple(sorted(ports)),
            extra_hosts=settings.extra_hosts,
        )

    def container_secrets(self, service: Service, references: list[dict]) -> tuple[dict[str, str], dict[str, str]]:
        """A container's `secrets`: the environment variables (envVarName with secretKeyRef) and the files
        (directoryPath, a file a key) they give it. A secret that doesn't exist is Snowflake's error."""
        env, files = {}, {}
        for reference in references:
            secret = reference["snowflakeSecret"]
            text = secret if isinstance(secret, str) else secret.get("objectName") or secret.get("objectReference")
            name = ObjectName(*secret_name(str(text), service.database, service.schema))
            if "envVarName" in reference:
                env[reference["envVarName"]] = self.secrets.value(name, reference["secretKeyRef"])
            else:
                folder = reference["directoryPath"].rstrip("/")
                files |= {f"{folder}/{key}": value for key, value in self.secrets.files(name).items()}
        return env, files

    def node_capacity(self, service: Service) -> "Capacity":
        """What a node of the service's compute pool holds: the default limits of its containers, and their cap."""
        pool = self.compute_pools.get(service.compute_pool)
        if pool is None or pool.instance_family not in INSTANCE_FAMILIES:
            return Capacity(None, None, "")
        cpus, gib = INSTANCE_FAMILIES[pool.instance_family]
        return Capacity(gib * 2**30, cpus * 10**9, pool.instance_family)

    def image_reference(self, image: str) -> str:
        """`/db/schema/repository/image:tag` as a reference to the local registry, once it is there."""
        registry = self.registry()
        path = image.removeprefix(registry.address).strip("/")
        parts = path.split("/")
        if not image.startswith(("/", registry.address)) or len(parts) < 4:
            raise invalid(f"Invalid spec: image '{image}' must be /<database>/<schema>/<repository>/<image>:<tag>.")
        repository = ObjectName(*(part.upper() for part in parts[:3]))
        if str(repository) not in self.repositories:
            raise does_not_exist("Image repository", str(repository))
        name, _, tag = "/".join(parts[3:]).partition(":")
        repository_path = "/".join(parts[:3]).lower()
        if not registry.exists(f"{repository_path}/{name}", tag or "latest"):
            raise invalid(
                f"Invalid spec: image '{image}' was not found in image repository {repository}: "
                f"push it first (docker push {registry.address}/{repository_path}/{name}:{tag or 'latest'})."
            )
        return f"{registry.address}/{repository_path}/{name}:{tag or 'latest'}"

    def containers_backend(self) -> Backend:
        if self.backend is None:
            raise invalid("No Docker engine is reachable, so the local SPCS can't run containers: start one.")
        return self.backend

    # --- after a restart ----------------------------------------------------------------------

    def reconcile(self) -> None:
        """After an emulator restart: what runs but is not in the catalog goes, services come back,
        and a job that was cut off by the stop is FAILED."""
        if not self.backend:
            return
        running = self.backend.keys()
        for key in running - {service.workload_key for service in self.services.values()}:
            self.backend.remove(key)
        for service in list(self.services.values()):
            if service.is_job and service.outcome is None:
                if service.workload_key in running:
                    threading.Thread(target=self.finish_job, args=(service,), daemon=True).start()
                else:
                    self.record_outcome(service, self.failed_states(service, INTERRUPTED))
            elif not service.is_job and not service.suspended and service.workload_key not in running:
                service.failure = None
                self.start_in_background(service)

    def job_name(self) -> str:
        return f"JOB_{uuid.uuid4().hex[:16].upper()}"


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
    ports = {int(port): host for port, host in (record.get("ports") or {}).items()}
    return ContainerState(**{**record, "started": started and datetime.fromisoformat(started), "ports": ports})
