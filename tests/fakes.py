"""Stand-ins for what the local SPCS's catalog drives, so that its statements are tested without Docker."""

import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn

from spcs_local.emulator import ACCOUNT, fakesnow_fixes
from spcs_local.emulator.catalog import Catalog, Image, ObjectName, Settings
from spcs_local.emulator.guard import Doors
from spcs_local.emulator.results import Result, SnowflakeError, does_not_exist
from spcs_local.emulator.server import CONTAINER_HOST, SNOWFLAKE_PORT, front_of
from spcs_local.emulator.statements import Context, Statements
from spcs_local.emulator.tls import TlsFiles
from spcs_local.emulator.workload import BackendError, ContainerState, Usage, Workload, stamped
from spcs_local.processes import free_port


@dataclass
class FakeBackend:
    """Runs nothing; each container is READY (or DONE/FAILED with `exit_codes`) once started."""

    exit_codes: dict[str, int] = field(default_factory=dict)  # container (or container/instance) -> exit code
    pending: bool = False  # services never get READY
    pending_instances: set[int] = field(default_factory=set)  # nor do these instances of them
    fail_start: str | None = None
    job_seconds: float = 0.0
    start_seconds: float = 0.0  # how long a start takes (pulling, creating)
    created: int | None = None  # how many of a workload's containers exist so far (None: all of them)
    ports: dict[int, int] | None = None  # where every instance answers on 127.0.0.1 (a real server of the test)
    started: list[Workload] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    built: list[tuple[str, list[str]]] = field(default_factory=list)  # remote builds: reference, context's files
    dropped_volumes: list[str] = field(default_factory=list)  # the services whose block volumes went
    running: dict[str, Workload] = field(default_factory=dict)
    cpu_seconds: float = 0.0  # what each running container has used; each look finds half a second more

    def usage(self, key: str) -> dict[str, Usage]:
        self.cpu_seconds += 0.5
        workload = self.running.get(key)
        return {c.name: Usage(self.cpu_seconds, 64 * 2**20) for c in (workload.containers if workload else ())}

    def start(self, workload: Workload) -> None:
        if self.fail_start:
            raise BackendError(self.fail_start)
        time.sleep(self.start_seconds)
        self.started.append(workload)
        self.running[workload.key] = workload

    def states(self, key: str) -> list[ContainerState] | None:
        workload = self.running.get(key)
        if workload is None:
            return None
        states, instance = [], int(key.rpartition("/")[2])
        for container in workload.containers[: self.created]:
            if workload.job:
                code = self.exit_codes.get(f"{container.name}/{instance}", self.exit_codes.get(container.name, 0))
                status, message = ("DONE", "Completed successfully") if code == 0 else ("FAILED", f"exit code {code}")
                states.append(ContainerState(container.name, status, message, container.image, exit_code=code))
            else:
                status = "PENDING" if self.pending or instance in self.pending_instances else "READY"
                ports = self.ports or {port: 40000 + 1000 * instance + port for port in workload.ports}  # its own
                urls = {port: f"http://127.0.0.1:{host}" for port, host in ports.items()}
                states.append(ContainerState(container.name, status, "Running", container.image, urls=urls))
        return states

    def set_egress(self, key: str, egress: tuple[str, ...]) -> None:
        if key not in self.running:
            raise BackendError(f"{key} is not running")
        self.running[key] = dataclasses.replace(self.running[key], egress=egress)

    def wait(self, key: str, cancelled: threading.Event | None = None) -> list[ContainerState]:
        (cancelled or threading.Event()).wait(self.job_seconds)
        return self.states(key) or []

    def logs(
        self, key: str, container: str, lines: int, since: datetime | None = None, previous: bool = False,
        stderr_only: bool = False,
    ) -> str:  # fmt: skip
        run = "previous" if previous else "line"
        stamped = [(datetime(2026, 1, 1, 0, 0, n, tzinfo=UTC), f"{key} {container} {run} {n}") for n in range(3)]
        kept = [f"{at.isoformat().replace('+00:00', '.000000000Z')} {text}" for at, text in stamped
                if since is None or at > since]  # fmt: skip
        return "\n".join(kept[-lines:])

    def build(self, files: dict[str, bytes], reference: str, log: Callable[[str], None]) -> bool:
        self.built.append((reference, sorted(files)))
        log(stamped(f"Step 1/1 : {files.get('Dockerfile', b'').decode()}\npushed {reference}"))
        return b"fail" not in files.get("Dockerfile", b"")

    def drop_volumes(self, service: str) -> None:
        self.dropped_volumes.append(service)

    def remove(self, key: str) -> None:
        self.removed.append(key)
        self.running.pop(key, None)

    def keys(self) -> set[str]:
        return set(self.running)


@dataclass
class FakeImages:
    address: str = "127.0.0.1:5000"
    pushed: set[str] = field(default_factory=set)  # path:tag
    deleted: list[str] = field(default_factory=list)

    def exists(self, path: str, tag: str) -> bool:
        return f"{path}:{tag}" in self.pushed

    def images(self, path: str) -> list[Image]:
        found = [image.rpartition(":") for image in sorted(self.pushed) if image.startswith(f"{path}/")]
        return [Image(name.removeprefix(f"{path}/"), tag, "sha256:" + "0" * 64, None) for name, _, tag in found]

    def delete(self, path: str) -> None:
        self.deleted.append(path)
        self.pushed = {image for image in self.pushed if not image.startswith(f"{path}/")}


@dataclass
class FakeStages:
    """The tutorials' database and schema, and stages that hold the files put in `files`."""

    files: dict[tuple[str, str], str] = field(default_factory=dict)  # (stage, path) -> text
    schemas: set[tuple[str, str]] = field(default_factory=lambda: {("TUTORIAL_DB", "DATA_SCHEMA")})
    root: Path | None = None  # where stages with folders (what stage volumes mount) are
    stages: set[str] = field(default_factory=lambda: {"TUTORIAL_DB.DATA_SCHEMA.TUTORIAL_STAGE"})

    def folder(self, stage: ObjectName) -> Path:
        if str(stage) not in self.stages or self.root is None:
            raise does_not_exist("Stage", str(stage))
        folder = self.root / str(stage)
        folder.mkdir(parents=True, exist_ok=True)
        return folder.resolve()

    def read(self, stage: ObjectName, path: str) -> str:
        if (str(stage), path) not in self.files:
            raise SnowflakeError(f"Specification file '{path}' was not found on stage @{stage}.")
        return self.files[(str(stage), path)]

    def read_folder(self, stage: ObjectName, folder: str) -> dict[str, bytes]:
        prefix = folder.strip("/") + "/"
        found = {path.removeprefix(prefix): text.encode() for (name, path), text in self.files.items()
                 if name == str(stage) and path.startswith(prefix)}  # fmt: skip
        if not found:
            raise SnowflakeError(f"Nothing was uploaded to @{stage}/{folder}.")
        return found

    def drop_stage(self, stage: ObjectName) -> bool:
        return self.drop_files(lambda name: name == str(stage))

    def drop_schema(self, database: str, schema: str) -> bool:
        self.drop_files(lambda name: name.startswith(f"{database}.{schema}."))
        return self.drop_schemas({(database, schema)})

    def drop_database(self, database: str) -> bool:
        self.drop_files(lambda name: name.startswith(f"{database}."))
        return self.drop_schemas({s for s in self.schemas if s[0] == database})

    def drop_files(self, on_it: Callable[[str], bool]) -> bool:
        """Drop the files of the stages `on_it` names; whether there were any."""
        dropped = [key for key in self.files if on_it(key[0])]
        for key in dropped:
            del self.files[key]
        return bool(dropped)

    def drop_schemas(self, schemas: set[tuple[str, str]]) -> bool:
        found = schemas & self.schemas
        self.schemas -= found
        return bool(found)


class LocalSPCS:
    """The statement layer over a catalog on fakes: `sql("SHOW SERVICES")` as a session would run it."""

    def __init__(self, path: Path, backend: FakeBackend | None = None) -> None:
        self.path = path
        self.backend = backend or FakeBackend()
        self.images = FakeImages()
        self.stages = FakeStages(root=path / "stages")
        self.settings = Settings(ACCOUNT, CONTAINER_HOST, SNOWFLAKE_PORT, 8765)
        self.catalog = Catalog(path / "catalog.json", self.backend, self.images, self.settings)
        self.catalog.stage_folder = self.stages.folder
        self.statements = Statements(self.catalog, self.stages)
        self.context = Context("TUTORIAL_USER", "TEST_ROLE", "TUTORIAL_WAREHOUSE", "TUTORIAL_DB", "DATA_SCHEMA")

    def with_pool_and_images(self, *images: str) -> "LocalSPCS":
        """As after the Common Setup's compute pool and image repository, with these images pushed there."""
        self.sql("CREATE COMPUTE POOL tutorial_compute_pool MIN_NODES=1 MAX_NODES=1 INSTANCE_FAMILY=CPU_X64_XS")
        self.sql("CREATE IMAGE REPOSITORY tutorial_repository")
        self.images.pushed |= {f"tutorial_db/data_schema/tutorial_repository/{image}:latest" for image in images}
        return self

    def sql(self, text: str) -> Result:
        run = self.statements.parse(text)
        assert run is not None, f"not a local SPCS statement: {text}"
        return run(self.context)

    def rows(self, text: str) -> list[dict]:
        result = self.sql(text)
        return [dict(zip([c.name for c in result.columns], row, strict=True)) for row in result.rows]

    def value(self, text: str) -> object:
        return self.sql(text).rows[0][0]

    def restarted(self) -> "LocalSPCS":
        """The same catalog file and backend, as after an emulator restart."""
        again = LocalSPCS(self.path, self.backend)
        again.images = self.images
        again.catalog.image_store = self.images
        return again


@contextlib.contextmanager
def serving(
    spcs: LocalSPCS,
    directory: Path,
    poll_seconds: float = 20.0,
    doors: Doors | None = None,
    tls: TlsFiles | None = None,
) -> Iterator[str]:
    """The emulator's front over fakesnow and this catalog, on a free loopback port, in this process; over HTTPS
    with `tls`, as containers reach it."""
    with (
        front_of(fakesnow_fixes.install(directory), spcs.catalog, spcs.stages, poll_seconds, doors) as front,
        running(front, tls) as url,
    ):
        yield url


@contextlib.contextmanager
def running(app: Any, tls: TlsFiles | None = None, **options: Any) -> Iterator[str]:
    """An ASGI app on a free loopback port, in this process, over HTTPS with `tls`: its URL."""
    port = free_port()
    https = {"ssl_certfile": tls.certificate, "ssl_keyfile": tls.key} if tls else {}
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **https, **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:  # listening: a front whose doors refuse this test still counts
            assert thread.is_alive(), "the server did not start"
            time.sleep(0.02)
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def wait_until(condition: Callable[[], bool], seconds: float = 5.0) -> float:
    """Until `condition()` holds (an assertion error after `seconds`); how long it took."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < seconds, "not within the time"
        time.sleep(0.02)
    return time.monotonic() - start
