"""What the local SPCS puts in the account's event table, as SPCS does: a platform event each time a container's
status changes, the lines a spec's `logExporters.eventTableConfig.logLevel` exports (INFO: all it logs;
ERROR: what it writes to stderr), also after its containers are gone, and the platform metrics its
`platformMonitor` asks for. And the account's EVENT_TABLE parameter.
No SQL: the records go to `record`, which the emulator wires to the event table."""

import time
from datetime import UTC, datetime

from spcs_local.emulator.catalog.objects import (
    DEFAULT_EVENT_TABLE,
    ObjectName,
    Record,
    Service,
    stamp_of,
)
from spcs_local.emulator.results import invalid
from spcs_local.emulator.workload import ContainerState

STATUS_CHANGE = "CONTAINER.STATUS_CHANGE"
ACCOUNT_PARAMETERS = {"EVENT_TABLE": DEFAULT_EVENT_TABLE}


class Telemetry:
    """Part of the Catalog: the event table's records, and the account's parameters."""

    @property
    def event_table(self) -> ObjectName:
        return ObjectName(*self.account.get("EVENT_TABLE", DEFAULT_EVENT_TABLE).split("."))

    def set_account(self, name: str, value: str | None) -> None:
        """ALTER ACCOUNT SET (a value) or UNSET (None) of a parameter the local SPCS keeps."""
        if name not in ACCOUNT_PARAMETERS:
            raise invalid(f"SQL compilation error:\ninvalid parameter '{name}' for the local SPCS's account.")
        with self.lock:
            if value is None:
                self.account.pop(name, None)
            else:
                if len(value.split(".")) != 3:
                    raise invalid(f"SQL compilation error:\n{name} takes a table's full name: db.schema.table.")
                self.account[name] = value.upper()
            self.save()

    def observe(self) -> None:
        """Record what changed since the last look: containers' statuses, and new lines to export."""
        records: list[Record] = []
        for service in list(self.services.values()):
            if service.external or service.suspended:
                continue
            view = self.view(service)
            records += self.status_changes(service, view.containers)
            records += self.metrics(service, view.containers)
            level = exported_level(service)
            if level and not service.outcome and self.backend is not None:
                for state in view.containers:
                    since = self.exported.get((service.workload_key, state.instance, state.name))
                    text = self.backend.logs(service.instance_key(state.instance), state.name, 10_000, since,
                                             stderr_only=level == "ERROR")  # fmt: skip
                    records += self.new_lines(service, state, text)
        if records:
            self.record(self.event_table, records)

    def status_changes(self, service: Service, states: list[ContainerState]) -> list[Record]:
        changed = []
        for state in states:
            key = (service.workload_key, state.instance, state.name)
            if self.seen.get(key) != (state.status, state.message):
                self.seen[key] = (state.status, state.message)
                severity = "ERROR" if state.status == "FAILED" else "INFO"
                value = {"status": state.status, "message": state.message}
                changed.append(self.record_of(service, state, "EVENT", value, severity, STATUS_CHANGE))
        return changed

    def metrics(self, service: Service, states: list[ContainerState]) -> list[Record]:
        """The platform metrics of the groups the spec's platformMonitor asks for: `system` (CPU in cores over
        the last look, memory in bytes) and `status` (restarts)."""
        groups = monitored_groups(service)
        if not groups or self.backend is None or service.outcome:
            return []
        records = []
        for instance in sorted({state.instance for state in states}):
            used = self.backend.usage(service.instance_key(instance)) if "system" in groups else {}
            for state in [state for state in states if state.instance == instance]:
                measured: list[tuple[str, float, str]] = []
                if state.name in used:
                    key, now = (service.workload_key, instance, state.name), time.monotonic()
                    before = self.cpu_seen.get(key)
                    self.cpu_seen[key] = (now, used[state.name].cpu_seconds)
                    if before and now > before[0]:
                        cores = max(0.0, used[state.name].cpu_seconds - before[1]) / (now - before[0])
                        measured.append(("container.cpu.usage", round(cores, 4), "cpu"))
                    measured.append(("container.memory.usage", used[state.name].memory_bytes, "bytes"))
                if "status" in groups:
                    measured.append(("container.restarts", state.restarts, "count"))
                records += [self.record_of(service, state, "METRIC", value, "INFO", name, unit=unit)
                            for name, value, unit in measured]  # fmt: skip
        return records

    def new_lines(self, service: Service, state: ContainerState, text: str) -> list[Record]:
        """The stamped lines of `text` after the last one exported, as LOG records."""
        key = (service.workload_key, state.instance, state.name)
        last = self.exported.get(key)
        lines = []
        for line in text.splitlines():
            at = stamp_of(line)
            if last is None or at > last:
                message = line.split(" ", 1)[1] if " " in line else ""
                lines.append(self.record_of(service, state, "LOG", message, "INFO", None, at))
                self.exported[key] = at
        return lines

    def export_kept(self, job: Service, logs: dict[tuple[int, str], str]) -> None:
        """A job's last lines and final statuses, once it ended: the event table keeps them after it."""
        states = {(state.instance, state.name): state for state in self.view(job).containers}
        records = self.status_changes(job, list(states.values()))
        if exported_level(job):
            for (instance, name), text in logs.items():
                state = states.get((instance, name)) or ContainerState(name, "DONE", "", "", instance=instance)
                records += self.new_lines(job, state, text)
        if records:
            self.record(self.event_table, records)

    @staticmethod
    def record_of(
        service: Service, state: ContainerState, kind: str, value: object, severity: str, name: str | None,
        at: datetime | None = None, unit: str | None = None,
    ) -> Record:  # fmt: skip
        return Record(at or datetime.now(UTC), service.database, service.schema, service.name, service.compute_pool,
                      state.instance, state.name, kind, value, severity, name, unit)  # fmt: skip


def monitored_groups(service: Service) -> set[str]:
    """The metric groups of the spec's platformMonitor.metricConfig."""
    config = (service.document["spec"].get("platformMonitor") or {}).get("metricConfig") or {}
    return {str(group).lower() for group in config.get("groups") or []}


def exported_level(service: Service) -> str | None:
    """INFO or ERROR, as the spec's logExporters asks; None when it exports no logs (NONE, the default)."""
    level = ((service.document["spec"].get("logExporters") or {}).get("eventTableConfig") or {}).get("logLevel")
    return str(level).upper() if str(level).upper() in ("INFO", "ERROR") else None
