"""The local SPCS's objects: compute pools, image repositories, services (jobs too) and service functions.

It keeps Snowflake's rules for them (IF NOT EXISTS, OR REPLACE, IF EXISTS, the errors for a missing
or a duplicate object) and persists them as JSON, so they outlive the emulator. It knows no SQL: the
statement layer calls it. Containers run on a `Backend`; images live in an `ImageStore`.

One module a concern: `objects` (the records and their option rules), `pools` (compute pools and image
repositories), `workloads` (specs to workloads); this one holds services, jobs and functions, and what the
emulator keeps beside them (secrets, network rules and integrations, in modules of their own).
"""

import contextlib
import dataclasses
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import astuple
from datetime import datetime
from pathlib import Path
from typing import Any

from spcs_local.emulator.access import Access
from spcs_local.emulator.atomic import write
from spcs_local.emulator.catalog.objects import (
    CANCELLED,
    INTERRUPTED,
    LOGS_TAIL_DEFAULT,
    OBJECT_TYPES,
    SERVICE_DEFAULTS,
    STAMP,
    UPGRADE_SECONDS,
    ComputePool,
    Image,
    ImageRepository,
    ImageStore,
    ObjectName,
    Outcome,
    Service,
    ServiceFunction,
    ServiceView,
    Settings,
    already_dropped,
    base_type,
    containers_of,
    decode,
    decode_state,
    encode,
    file_name,
    flag,
    function_key,
    key_of,
    known,
    listed,
    log_level,
    new_generation,
    now,
    outcome_problems,
    positive,
    stamp_of,
    unset,
)
from spcs_local.emulator.catalog.pools import PoolsAndRepositories
from spcs_local.emulator.catalog.workloads import Workloads
from spcs_local.emulator.results import SnowflakeError, already_exists, does_not_exist, invalid, unsupported
from spcs_local.emulator.secret_store import SecretStore
from spcs_local.emulator.workload import Backend, BackendError, ContainerState

__all__ = ["Catalog", "Image", "ObjectName", "ServiceFunction", "ServiceView", "Settings", "already_dropped", "listed"]


class Catalog(PoolsAndRepositories, Workloads):
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
        self.access.on_changed = self.refresh_egress
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
        write(self.path, json.dumps(state, indent=1).encode())

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
            min_ready_instances=positive(options, "MIN_READY_INSTANCES") if "MIN_READY_INSTANCES" in options else None,
            log_level=log_level(options),
            auto_resume=flag(options, "AUTO_RESUME", True),
            auto_suspend_secs=positive(options, "AUTO_SUSPEND_SECS", 0, allow_zero=True),
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
                    self.containers_backend().start(self.workload(service, self.issue_token(service)))
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

    def forget_workload(self, service: Service) -> None:
        """Stop what runs for the service's workload, and its token logs in no more."""
        self.stop(service)
        self.tokens.pop(service.workload_key, None)
        self.token_file(service).unlink(missing_ok=True)

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
        """The workload's OAuth token, which its containers get as SPCS mounts it: random, valid until the service
        is dropped, and kept (0600) so that it stays valid when the local SPCS starts again."""
        file = self.token_file(service)
        if service.workload_key not in self.tokens or not file.exists():
            self.tokens[service.workload_key] = secrets.token_urlsafe(32)
            file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write(file, self.tokens[service.workload_key].encode(), 0o600)
        return self.tokens[service.workload_key]

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
        self.forget_workload(service)
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
            elif action == "UNSET":
                unset(service, options, SERVICE_DEFAULTS, "SERVICE")
                if "EXTERNAL_ACCESS_INTEGRATIONS" in options:
                    self.refresh_egress([service])
            else:  # SET
                known(options, SERVICE_DEFAULTS, "SERVICE")
                for option in ("MIN_INSTANCES", "MAX_INSTANCES", "MIN_READY_INSTANCES"):
                    if option in options:
                        setattr(service, option.lower(), positive(options, option))
                if "LOG_LEVEL" in options:
                    service.log_level = log_level(options)
                if "AUTO_SUSPEND_SECS" in options:
                    service.auto_suspend_secs = positive(options, "AUTO_SUSPEND_SECS", allow_zero=True)
                if "AUTO_RESUME" in options:
                    service.auto_resume = flag(options, "AUTO_RESUME", True)
                for option in ("QUERY_WAREHOUSE", "COMMENT"):
                    if option in options:
                        setattr(service, option.lower(), options[option])
                if "EXTERNAL_ACCESS_INTEGRATIONS" in options:
                    service.external_access_integrations = self.access.check(
                        listed(options["EXTERNAL_ACCESS_INTEGRATIONS"])
                    )
                    self.refresh_egress([service])
            service.updated_on = now()
            self.save()
        return "Statement executed successfully."

    def upgrade_service(self, name: ObjectName, spec: str, if_exists: bool) -> str:
        """ALTER SERVICE ... FROM SPECIFICATION: the new spec's instance starts, and only once it is READY does
        the old one stop. A spec the linter refuses, an image that was never pushed, or an instance that doesn't
        become READY fails the ALTER and leaves the running instance serving."""
        with self.lock:
            if if_exists and str(name) not in self.services:
                return "Statement executed successfully."
            service = self.service(name)
            if service.is_job or service.external:
                raise invalid(f"SQL compilation error:\n{name.name} can't be upgraded: it is a job, or runs elsewhere.")
        upgraded = dataclasses.replace(service, spec=spec, generation=new_generation(), failure=None)
        self.workload(upgraded)  # the spec and its images, checked before anything changes
        if not service.suspended:
            backend = self.containers_backend()
            try:
                with self.workload_lock(upgraded):
                    backend.start(self.workload(upgraded, self.issue_token(upgraded)))
                self.wait_until_ready(upgraded)
            except BackendError as error:
                self.forget_workload(upgraded)
                raise invalid(f"Upgrade of {name.name} failed: {error} The service keeps its former spec.") from None
        with self.lock:
            self.services[service.key] = upgraded
            upgraded.updated_on = now()
            self.save()
        self.forget_workload(service)
        return "Statement executed successfully."

    def wait_until_ready(self, service: Service) -> None:
        """Until each container of the service is READY; BackendError when one fails or time runs out."""
        deadline = time.monotonic() + UPGRADE_SECONDS
        while True:
            states = self.containers_backend().states(service.workload_key) or []
            if states and all(state.status == "READY" for state in states):
                return
            failed = [state for state in states if state.status == "FAILED"]
            if failed or time.monotonic() > deadline:
                raise BackendError(f"{failed[0].message if failed else f'not READY within {UPGRADE_SECONDS} s'}.")
            time.sleep(0.2)

    def refresh_egress(self, services: list[Service] | None = None) -> None:
        """Running instances reach what their integrations allow now: after a change of the integrations, of
        their rules, or of a service's list of them."""
        if self.backend is None:
            return
        for service in list(self.services.values()) if services is None else services:
            if not (service.external or service.suspended or service.outcome):
                egress = tuple(self.access.egress(service.external_access_integrations))
                with contextlib.suppress(BackendError):  # not running: it gets its egress when it starts
                    self.backend.set_egress(service.workload_key, egress)

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
        states = (self.backend.states(service.workload_key) if self.backend else None) or []
        # A container of the spec not yet created (an instance's containers are made one by one) is PENDING.
        present = {state.name for state in states}
        states += [
            ContainerState(c["name"], "PENDING", "Waiting to start.", "")
            for c in containers_of(service)
            if c["name"] not in present
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

    def logs(
        self, name: ObjectName, instance: int, container: str, lines: int, since: datetime | None = None,
        timestamps: bool = False,
    ) -> str:  # fmt: skip
        """A container's last `lines` lines after `since`, with their timestamps or not; a job's are kept after
        its containers are gone."""
        service = self.service(name)
        if instance != 0:
            raise invalid(f"Service {name.name} has no instance {instance}: the local SPCS runs instance 0 only.")
        if container not in [c["name"] for c in containers_of(service)]:
            raise invalid(f"Service {name.name} has no container '{container}'.")
        saved = self.job_logs_dir(service) / f"{container}.log"
        if service.outcome and saved.exists():
            stamped = [line for line in saved.read_text().splitlines() if since is None or stamp_of(line) > since]
            text = "\n".join(stamped[-lines:])
        elif service.suspended or not self.backend:
            text = ""
        else:
            text = self.backend.logs(service.workload_key, container, lines, since)
        return text if timestamps else STAMP.sub("", text)

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
