"""Services and jobs as SPCS runs them: each of their instances a workload on the backend (a service's
MIN_INSTANCES, a job's REPLICAS), their status from what runs, upgrades, scaling, logs, and a restart."""

import contextlib
import dataclasses
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from spcs_local.emulator.catalog.objects import (
    CANCELLED,
    INTERRUPTED,
    LOGS_TAIL_DEFAULT,
    SERVICE_DEFAULTS,
    STAMP,
    UPGRADE_SECONDS,
    ObjectName,
    Outcome,
    Service,
    ServiceView,
    already_dropped,
    containers_of,
    decode_state,
    encode,
    file_name,
    flag,
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
from spcs_local.emulator.results import SnowflakeError, already_exists, does_not_exist, invalid
from spcs_local.emulator.workload import BackendError, ContainerState
from spcs_local.processes import free_port

PENDING = "Waiting to start."
OBSERVE_SECONDS = 5  # how often the event table gets what changed


class Services:
    """Part of the Catalog: services and jobs."""

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
            give_ingress(service)
            self.services[service.key] = service
            self.save()
        self.start_in_background(service)
        return f"Service {name.name} successfully created."

    def execute_job(
        self, name: ObjectName, pool: str, spec: str, options: dict[str, Any], owner: str, asynchronous: bool,
        cancelled: threading.Event | None = None,
    ) -> str:  # fmt: skip
        """Run a job's replicas; unless asynchronous, wait for their end. A FAILED job is an error naming its exit
        codes; a job whose statement is cancelled stops, FAILED, and the statement ends as Snowflake's "canceled"."""
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
            replicas=positive(options, "REPLICAS", 1),
            min_instances=positive(options, "MIN_INSTANCES", 1),
            max_instances=positive(options, "MAX_INSTANCES", options.get("MIN_INSTANCES", 1)),
            min_ready_instances=positive(options, "MIN_READY_INSTANCES") if "MIN_READY_INSTANCES" in options else None,
            log_level=log_level(options),
            auto_resume=flag(options, "AUTO_RESUME", True),
            auto_suspend_secs=positive(options, "AUTO_SUSPEND_SECS", 0, allow_zero=True),
            query_warehouse=options.get("QUERY_WAREHOUSE"),
            external_access_integrations=self.access.check(listed(options.get("EXTERNAL_ACCESS_INTEGRATIONS"))),
            comment=options.get("COMMENT"),
        )
        check_instances(service)
        self.workload(service)  # checks the spec and its images now, so that CREATE fails instead of the start
        return service

    # --- running instances --------------------------------------------------------------------

    def start_in_background(self, service: Service, indexes: list[int] | None = None) -> None:
        threading.Thread(target=self.start, args=(service, indexes), daemon=True).start()

    def start(self, service: Service, indexes: list[int] | None = None) -> bool:
        """Start the service's instances (or those of `indexes`), unless it was dropped or suspended meanwhile;
        a failure is kept as its status message. Starts and stops of one service take turns."""
        try:
            with self.workload_lock(service):
                if self.services.get(service.key) is service and not service.suspended:
                    self.start_instances(service, range(service.instances) if indexes is None else indexes)
        except (BackendError, SnowflakeError) as error:
            with self.lock:
                service.failure = str(error)
                self.save()
            return False
        return True

    def start_instances(self, service: Service, indexes: range | list[int]) -> None:
        """Start instances side by side, each a workload of its own; the first failure is raised."""
        backend, token = self.containers_backend(), self.issue_token(service)
        workloads = [self.workload(service, token, index) for index in indexes]
        with ThreadPoolExecutor(max(len(workloads), 1)) as pool:
            for started in [pool.submit(backend.start, workload) for workload in workloads]:
                started.result()

    def workload_lock(self, service: Service) -> threading.Lock:
        with self.lock:
            return self.workload_locks.setdefault(service.workload_key, threading.Lock())

    def running_instances(self, service: Service) -> set[int]:
        """The instances of which something runs on the backend."""
        keys = self.backend.keys() if self.backend else set()
        return {index for index in map(service.instance_of, keys) if index is not None}

    def stop(self, service: Service, indexes: set[int] | None = None) -> None:
        """Remove what runs for the service (or for those of its instances), once a start under way has finished."""
        if self.backend:
            with self.workload_lock(service):
                for index in self.running_instances(service) if indexes is None else indexes:
                    self.backend.remove(service.instance_key(index))

    def scale(self, service: Service) -> None:
        """After a change of MIN_INSTANCES: the instances it adds start, those it takes away (the last) stop."""
        if service.is_job or service.suspended or service.external:
            return
        running = self.running_instances(service)
        self.stop(service, {index for index in running if index >= service.instances})
        missing = [index for index in range(service.instances) if index not in running]
        if missing:
            self.start_in_background(service, missing)

    def forget_workload(self, service: Service) -> None:
        """Stop what runs for the service, and its token logs in no more."""
        self.stop(service)
        self.tokens.pop(service.workload_key, None)
        self.token_file(service).unlink(missing_ok=True)

    # --- jobs -----------------------------------------------------------------------------------

    def run_job(self, job: Service, cancelled: threading.Event | None = None) -> Outcome:
        """Start a job's replicas and wait for their containers to exit, or for its statement to be cancelled."""
        if self.start(job):
            return self.finish_job(job, cancelled)
        return self.record_outcome(job, self.failed_states(job, job.failure or ""))

    def finish_job(self, job: Service, cancelled: threading.Event | None = None) -> Outcome:
        """Wait for each replica's containers; those that went with the emulator's stop are FAILED."""
        states = []
        for index in range(job.instances):
            ended = self.containers_backend().wait(job.instance_key(index), cancelled)
            states += [dataclasses.replace(state, instance=index) for state in ended] or self.failed_states(
                job, INTERRUPTED, [index]
            )
        if cancelled is not None and cancelled.is_set():
            outcome = self.record_outcome(job, self.failed_states(job, CANCELLED))
            self.stop(job)
            return outcome
        return self.record_outcome(job, states)

    def record_outcome(self, job: Service, states: list[ContainerState]) -> Outcome:
        """Keep how a job ended (DONE when every replica succeeded), and its logs, beyond its containers' life."""
        logs_dir = self.job_logs_dir(job)
        logs_dir.mkdir(parents=True, exist_ok=True)
        logs = {}
        for state in states:
            key = job.instance_key(state.instance)
            text = self.backend.logs(key, state.name, LOGS_TAIL_DEFAULT) if self.backend else ""
            (logs_dir / kept_log(state.instance, state.name)).write_text(text)
            logs[(state.instance, state.name)] = text
        outcome = Outcome(
            "DONE" if all(state.status == "DONE" for state in states) else "FAILED",
            [encode(state) for state in states],
        )
        with self.lock:
            job.outcome, job.updated_on = outcome, now()
            if job.key in self.services:
                self.save()
        self.export_kept(job, logs)
        return outcome

    @staticmethod
    def failed_states(service: Service, message: str, indexes: list[int] | None = None) -> list[ContainerState]:
        return [
            ContainerState(c["name"], "FAILED", message, "", instance=index)
            for index in (range(service.instances) if indexes is None else indexes)
            for c in containers_of(service)
        ]

    def job_logs_dir(self, job: Service) -> Path:
        return self.path.parent / "job-logs" / file_name(job.key)

    # --- dropping and altering ------------------------------------------------------------------

    def service(self, name: ObjectName) -> Service:
        if str(name) not in self.services:
            raise does_not_exist("Service", name.name)
        return self.services[str(name)]

    def drop_service(self, name: ObjectName, if_exists: bool) -> str:
        with self.lock:
            if str(name) not in self.services:
                return already_dropped("Service", name.name, if_exists)
            service = self.services.pop(str(name))
            self.save()
        self.forget_workload(service)
        if self.backend:
            self.backend.drop_volumes(service.key)
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
                check_instances(service)
                if "EXTERNAL_ACCESS_INTEGRATIONS" in options:
                    self.refresh_egress([service])
            else:  # SET
                self.set_properties(service, options)
            service.updated_on = now()
            self.save()
        if action in ("SET", "UNSET") and "MIN_INSTANCES" in options:
            threading.Thread(target=self.scale, args=(service,), daemon=True).start()
        return "Statement executed successfully."

    def set_properties(self, service: Service, options: dict[str, Any]) -> None:
        known(options, SERVICE_DEFAULTS, "SERVICE")
        changed = dataclasses.replace(service)
        for option in ("MIN_INSTANCES", "MAX_INSTANCES", "MIN_READY_INSTANCES"):
            if option in options:
                setattr(changed, option.lower(), positive(options, option))
        check_instances(changed)
        service.min_instances, service.max_instances = changed.min_instances, changed.max_instances
        service.min_ready_instances = changed.min_ready_instances
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
            service.external_access_integrations = self.access.check(listed(options["EXTERNAL_ACCESS_INTEGRATIONS"]))
            self.refresh_egress([service])

    def upgrade_service(self, name: ObjectName, spec: str, if_exists: bool) -> str:
        """ALTER SERVICE ... FROM SPECIFICATION: the new spec's instances start, and only once they are READY do
        the old ones stop. A spec the linter refuses, an image that was never pushed, or an instance that doesn't
        become READY fails the ALTER and leaves the running instances serving."""
        with self.lock:
            if if_exists and str(name) not in self.services:
                return "Statement executed successfully."
            service = self.service(name)
            if service.is_job or service.external:
                raise invalid(f"SQL compilation error:\n{name.name} can't be upgraded: it is a job, or runs elsewhere.")
        upgraded = dataclasses.replace(service, spec=spec, generation=new_generation(), failure=None)
        self.workload(upgraded)  # the spec and its images, checked before anything changes
        give_ingress(upgraded)
        if not service.suspended:
            try:
                with self.workload_lock(upgraded):
                    self.start_instances(upgraded, range(upgraded.instances))
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
        """Until each container of each instance is READY; BackendError when one fails or time runs out."""
        deadline = time.monotonic() + UPGRADE_SECONDS
        while True:
            states = self.instance_states(service)
            if all(state.status == "READY" for state in states):
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
                for index in range(service.instances):
                    with contextlib.suppress(BackendError):  # not running: it gets its egress when it starts
                        self.backend.set_egress(service.instance_key(index), egress)

    def suspend_service(self, service: Service) -> None:
        service.suspended, service.suspended_on = True, now()
        self.stop(service)

    def resume_service(self, service: Service) -> None:
        if service.suspended:
            service.suspended, service.failure, service.resumed_on = False, None, now()
            self.used[service.key] = time.monotonic()
            self.start_in_background(service)

    # --- auto-suspend and auto-resume -----------------------------------------------------------

    def watch(self, stop: threading.Event) -> None:
        """Until `stop` is set: suspend idle services each second, and record what changed every OBSERVE_SECONDS."""
        ticks = 0
        while not stop.wait(1.0):
            self.suspend_idle()
            ticks += 1
            if ticks % OBSERVE_SECONDS == 0:
                with contextlib.suppress(BackendError, SnowflakeError):  # the next look tells
                    self.observe()

    def suspend_idle(self, at: float | None = None) -> None:
        """A service with AUTO_SUSPEND_SECS that no service function has called for that long is suspended, as
        ALTER SERVICE ... SUSPEND does."""
        at = time.monotonic() if at is None else at
        with self.lock:
            for service in list(self.services.values()):
                if service.is_job or service.external or service.suspended or not service.auto_suspend_secs:
                    continue
                if at - self.used.setdefault(service.key, at) >= service.auto_suspend_secs:
                    self.suspend_service(service)
                    self.save()

    def in_use(self, service: Service) -> Service:
        """A call reached the service: it is not idle, and a suspended one resumes if AUTO_RESUME allows (the
        call waits until it is READY)."""
        with self.lock:
            self.used[service.key] = time.monotonic()
            if not service.suspended:
                return service
            if not service.auto_resume:
                raise invalid(f"Service {service.name} is suspended and has AUTO_RESUME = FALSE: resume it first.")
            self.resume_service(service)
            self.save()
        try:
            self.wait_until_ready(service)
        except BackendError as error:
            raise invalid(f"Service {service.name} could not resume: {error}") from None
        return service

    # --- status and logs ------------------------------------------------------------------------

    def instance_states(self, service: Service) -> list[ContainerState]:
        """Each container of each instance as it runs now; one not created yet (an instance's containers are
        made one by one) is PENDING."""
        states = []
        for index in range(service.instances):
            found = (self.backend.states(service.instance_key(index)) if self.backend else None) or []
            present = {state.name for state in found}
            states += [dataclasses.replace(state, instance=index) for state in found]
            states += [
                ContainerState(c["name"], "PENDING", PENDING, "", instance=index)
                for c in containers_of(service)
                if c["name"] not in present
            ]
        return states

    def view(self, service: Service) -> ServiceView:
        """The service's status as SPCS reports it, from its containers as they run now: a service is RUNNING
        once MIN_READY_INSTANCES of its instances are READY, a job while its containers run."""
        if service.external:
            return ServiceView(service, "RUNNING", [])
        if service.suspended:
            return ServiceView(service, "SUSPENDED", [])
        if service.outcome:
            return ServiceView(service, service.outcome.status, [decode_state(s) for s in service.outcome.containers])
        if service.failure:
            return ServiceView(service, "FAILED", self.failed_states(service, service.failure))
        states = self.instance_states(service)
        statuses = {state.status for state in states}
        needed = min(service.min_ready_instances or service.instances, service.instances)
        if not service.is_job and len(ready_instances(states)) >= needed:
            status = "RUNNING"
        elif "FAILED" in statuses:
            status = "FAILED"
        elif "PENDING" in statuses or not service.is_job:
            status = "PENDING"
        else:
            status = "RUNNING"  # a job whose containers all exited is recorded by run_job a moment later
        return ServiceView(service, status, states)

    def ingress_endpoints(self) -> dict[int, tuple[str, str]]:
        """Each public endpoint's ingress port, with the service and the endpoint it opens."""
        return {port: (service.key, endpoint) for service in list(self.services.values())
                if not (service.is_job or service.external) for endpoint, port in service.ingress.items()}  # fmt: skip

    def views(self) -> list[ServiceView]:
        return [self.view(service) for service in list(self.services.values())]

    def wait_for_services(
        self, names: list[ObjectName], seconds: float, cancelled: threading.Event | None = None
    ) -> str:
        """'OK' once every container of every instance is READY (a job's DONE); an error when one FAILED, when
        time is up or when cancelled."""
        services = [self.service(name) for name in names]
        deadline = time.monotonic() + seconds
        while True:
            views = [self.view(service) for service in services]
            failed = [view for view in views if view.status == "FAILED"]
            if failed:
                messages = "; ".join(f"{s.name}: {s.message}" for view in failed for s in view.containers)
                raise invalid(f"Service {failed[0].service.name} is FAILED ({messages}).")
            if all(view.status == "DONE" or all_ready(view) for view in views):
                return "OK"
            if time.monotonic() >= deadline:
                statuses = ", ".join(f"{view.service.name} is {view.status}" for view in views)
                raise invalid(f"Timed out after {seconds:g} s waiting for the services to be READY: {statuses}.")
            if (cancelled or threading.Event()).wait(0.2):
                raise SnowflakeError("SQL execution canceled", "000604", "57014")

    def logs(
        self, name: ObjectName, instance: int, container: str, lines: int, since: datetime | None = None,
        timestamps: bool = False, previous: bool = False,
    ) -> str:  # fmt: skip
        """A container's last `lines` lines after `since`, with their timestamps or not, of its current run or the
        `previous` one; a job's are kept after its containers are gone."""
        service = self.service(name)
        if not 0 <= instance < service.instances:
            raise invalid(f"Service {name.name} has no instance {instance}: its instances are 0 to "
                          f"{service.instances - 1}.")  # fmt: skip
        if container not in [c["name"] for c in containers_of(service)]:
            raise invalid(f"Service {name.name} has no container '{container}'.")
        saved = self.job_logs_dir(service) / kept_log(instance, container)
        if saved.exists():  # a job's, kept at its end (a build's, as it goes)
            if previous:  # a job's container runs once
                return ""
            stamped = [line for line in saved.read_text().splitlines() if since is None or stamp_of(line) > since]
            text = "\n".join(stamped[-lines:])
        elif service.suspended or not self.backend:
            text = ""
        else:
            text = self.backend.logs(service.instance_key(instance), container, lines, since, previous)
        return text if timestamps else STAMP.sub("", text)

    def endpoint_urls(self, service: Service, endpoint: str) -> list[str]:
        """Where each READY instance of the service answers on its endpoint, as the host reaches it."""
        if endpoint in service.external:
            return [service.external[endpoint]]
        view = self.view(self.in_use(service))
        port = next(e for e in service.document["spec"].get("endpoints") or [] if e["name"] == endpoint).get("port")
        urls = []
        for states in ready_instances(view.containers).values():
            reached = {inside: url for state in states for inside, url in state.urls.items()}
            if port in reached:
                urls.append(reached[port])
        if not urls:
            raise invalid(f"Service {service.name} is {view.status}: no instance of it is READY.")
        return urls

    # --- after a restart ----------------------------------------------------------------------

    def reconcile(self) -> None:
        """After an emulator restart: what runs but is not in the catalog goes, services come back (each
        instance), and a job that was cut off by the stop is FAILED."""
        if not self.backend:
            return
        running = self.backend.keys()
        wanted = {s.instance_key(index) for s in self.services.values() for index in range(s.instances)}
        for key in running - wanted:
            self.backend.remove(key)
        with self.lock:  # a service kept by an earlier version of the local SPCS gets its ingress ports now
            for service in self.services.values():
                if not (service.is_job or service.external):
                    give_ingress(service)
            self.save()
        for service in list(self.services.values()):
            present = [index for index in range(service.instances) if service.instance_key(index) in running]
            if service.is_job and service.outcome is None:
                if present:
                    threading.Thread(target=self.finish_job, args=(service,), daemon=True).start()
                else:
                    self.record_outcome(service, self.failed_states(service, INTERRUPTED))
            elif not service.is_job and not service.suspended and len(present) < service.instances:
                service.failure = None
                self.start_in_background(service, [i for i in range(service.instances) if i not in present])


def give_ingress(service: Service) -> None:
    """Each public endpoint's ingress port: chosen once, then kept across SUSPEND/RESUME, upgrades and restarts of
    the local SPCS, as SPCS keeps an ingress_url; an endpoint an upgrade takes away loses its port."""
    public = service.public_endpoints
    service.ingress = {name: port for name, port in service.ingress.items() if name in public}
    for name in public:
        if name not in service.ingress:
            service.ingress[name] = free_port()


def check_instances(service: Service) -> None:
    if service.max_instances < service.min_instances:
        raise invalid("SQL compilation error:\nMAX_INSTANCES must be greater than or equal to MIN_INSTANCES.")
    if (service.min_ready_instances or 0) > service.min_instances:
        raise invalid("SQL compilation error:\nMIN_READY_INSTANCES must be less than or equal to MIN_INSTANCES.")


def ready_instances(states: list[ContainerState]) -> dict[int, list[ContainerState]]:
    """The instances whose every container is READY, with their containers."""
    instances: dict[int, list[ContainerState]] = {}
    for state in states:
        instances.setdefault(state.instance, []).append(state)
    return {index: found for index, found in instances.items() if all(s.status == "READY" for s in found)}


def all_ready(view: ServiceView) -> bool:
    return view.status == "RUNNING" and all(state.status in ("READY", "DONE") for state in view.containers)


def kept_log(instance: int, container: str) -> str:
    """A job's kept log of one container of one replica."""
    return f"{instance}.{container}.log"
