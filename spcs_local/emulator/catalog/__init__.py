"""The local SPCS's objects: compute pools, image repositories, services (jobs too) and service functions.

It keeps Snowflake's rules for them (IF NOT EXISTS, OR REPLACE, IF EXISTS, the errors for a missing
or a duplicate object) and persists them as JSON, so they outlive the emulator. It knows no SQL: the
statement layer calls it. Containers run on a `Backend`; images live in an `ImageStore`.

One module a concern: `objects` (the records and their option rules), `pools` (compute pools and image
repositories), `services` (services and jobs, and their instances), `workloads` (specs to workloads); this one
holds service functions, the containers' tokens, and what the emulator keeps beside them (secrets, network rules
and integrations, in modules of their own).
"""

import json
import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import astuple
from datetime import datetime
from pathlib import Path

from spcs_local.emulator.access import Access
from spcs_local.emulator.atomic import write
from spcs_local.emulator.catalog.builds import Builds
from spcs_local.emulator.catalog.objects import (
    OBJECT_TYPES,
    ComputePool,
    Image,
    ImageRepository,
    ImageStore,
    ObjectName,
    Record,
    Service,
    ServiceFunction,
    ServiceView,
    Settings,
    already_dropped,
    base_type,
    decode,
    encode,
    file_name,
    function_key,
    key_of,
    listed,
)
from spcs_local.emulator.catalog.pools import PoolsAndRepositories
from spcs_local.emulator.catalog.services import Services
from spcs_local.emulator.catalog.telemetry import Telemetry
from spcs_local.emulator.catalog.users import Users
from spcs_local.emulator.catalog.workloads import Workloads
from spcs_local.emulator.results import already_exists, invalid, unsupported
from spcs_local.emulator.secret_store import SecretStore
from spcs_local.emulator.workload import Backend

__all__ = [
    "Catalog",
    "Image",
    "ObjectName",
    "Service",
    "ServiceFunction",
    "ServiceView",
    "Settings",
    "already_dropped",
    "listed",
]


class Catalog(Builds, PoolsAndRepositories, Services, Telemetry, Users, Workloads):
    def __init__(self, path: Path, backend: Backend | None, images: ImageStore | None, settings: Settings) -> None:
        self.path, self.backend, self.image_store, self.settings = path, backend, images, settings
        self.lock = threading.RLock()
        self.compute_pools: dict[str, ComputePool] = {}
        self.repositories: dict[str, ImageRepository] = {}
        self.services: dict[str, Service] = {}
        self.functions: dict[str, ServiceFunction] = {}
        self.on_functions_changed: Callable[[], None] = lambda: None
        self.stage_folder: Callable[[ObjectName], Path] = no_stages  # a stage's folder on the host, to mount
        self.create_event_table: Callable[[ObjectName, bool], None] = no_event_tables  # in the SQL engine
        self.tokens: dict[str, str] = {}  # workload key -> the OAuth token its containers log in with
        self.workload_locks: dict[str, threading.Lock] = {}
        self.used: dict[str, float] = {}  # service key -> when a call last reached it (time.monotonic())
        self.account: dict[str, str] = {}  # the account's parameters the local SPCS keeps (EVENT_TABLE)
        self.users: dict[str, dict[str, str]] = {}  # user -> its public keys by slot (RSA_PUBLIC_KEY, _2)
        self.record: Callable[[ObjectName, list[Record]], None] = lambda table, records: None  # to the event table
        self.seen: dict[tuple[str, int, str], tuple[str, str]] = {}  # container -> its last status and message
        self.exported: dict[tuple[str, int, str], datetime] = {}  # container -> its last line in the event table
        self.cpu_seen: dict[tuple[str, int, str], tuple[float, float]] = {}  # container -> when, its CPU seconds
        self.secrets = SecretStore(path.parent / "secrets.json")  # apart from the catalog's file: mode 0600
        self.access = Access(path.parent / "access.json")
        self.access.on_changed = self.refresh_egress
        self.load()

    # --- persistence --------------------------------------------------------------------------

    def load(self) -> None:
        if not self.path.exists():
            return
        saved = json.loads(self.path.read_text())
        self.account = saved.get("account", {})
        self.users = saved.get("users", {})
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
        state["account"] = self.account
        state["users"] = self.users
        write(self.path, json.dumps(state, indent=1).encode())

    # --- the containers' tokens ----------------------------------------------------------------

    def token_file(self, service: Service) -> Path:
        return self.path.parent / "tokens" / file_name(service.workload_key)

    def issue_token(self, service: Service) -> str:
        """The workload's OAuth token, which its containers get as SPCS mounts it: random, valid until the service
        is dropped, and kept (0600) so that it stays valid when the local SPCS starts again."""
        file = self.token_file(service)
        if service.workload_key not in self.tokens or not file.exists():
            self.tokens[service.workload_key] = secrets.token_urlsafe(32)
            file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write(file, self.tokens[service.workload_key].encode(), 0o600)
        return self.tokens[service.workload_key]

    def valid_token(self, token: str, as_caller: bool = False) -> bool:
        """Whether a container of a service or job that exists logs in with this token; with `as_caller`, one of
        a service whose spec asks for executeAsCaller (its token then goes before a caller's)."""
        for key, known in list(self.tokens.items()):
            if secrets.compare_digest(token.encode(), known.encode()):
                return not as_caller or any(
                    s.executes_as_caller for s in self.services.values() if s.workload_key == key
                )
        return False

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

    def function_urls(self, function: ServiceFunction) -> list[str]:
        """Where each READY instance of the function's service answers on its endpoint, as the host reaches it."""
        return self.endpoint_urls(self.service(ObjectName(*function.service.split("."))), function.endpoint)

    def register_external_service(self, name: ObjectName, endpoints: dict[str, str]) -> None:
        """A service that runs elsewhere (`make demo` runs the Echo service as a process): listed, callable
        through its endpoints, never persisted."""
        spec = {"spec": {"containers": [], "endpoints": [{"name": endpoint} for endpoint in endpoints]}}
        self.services[str(name)] = Service(
            name.database, name.schema, name.name, compute_pool="", spec=json.dumps(spec), owner="", external=endpoints
        )

    def job_name(self) -> str:
        return f"JOB_{uuid.uuid4().hex[:16].upper()}"


def no_stages(stage: ObjectName) -> Path:
    raise invalid(f"Stage volumes need the local SPCS's stages, which this catalog runs without (@{stage.name}).")


def no_event_tables(name: ObjectName, if_not_exists: bool) -> None:
    raise invalid(f"This catalog runs without the SQL engine, which keeps event tables ({name.name}).")
