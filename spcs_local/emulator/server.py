"""The emulator process: fakesnow behind the Snowflake front, and, with a registry, the local SPCS.

Without `registry`, it is the embedded Snowflake of `make demo` and the tests: SQL and stages only.
With it (`make local-up`), SPCS statements run containers on Docker. The emulator then listens on
127.0.0.1 (plain HTTP) for `snow` and the host, over HTTPS on the registry's address as its door
(`registry_front`), and over HTTPS on the gateway of the local SPCS's own Docker
network for the containers, which reach it as SNOWFLAKE_HOST on port 443, as in SPCS, with a certificate of
the local CA (`tls`); there it answers only peers of that network, never a container of the default bridge
or of anyone else. Stopping it (SIGTERM, SIGINT) cancels the statements
running (nothing half-written is committed) and what they wait on (service functions), and removes every
container and network it started; the catalog stays, and the services come back when it starts again.
"""

import asyncio
import contextlib
import hashlib
import secrets
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn

from spcs_local.emulator import ACCOUNT, DATABASE, SCHEMA, event_table, fakesnow_fixes, tls
from spcs_local.emulator.catalog import Catalog, ObjectName, Settings
from spcs_local.emulator.docker_backend import DockerBackend
from spcs_local.emulator.front import Front, password_ok
from spcs_local.emulator.guard import HEADER_BYTES, LOOPBACK, LOOPBACK_NAMES, Doors
from spcs_local.emulator.ingress import Ingress
from spcs_local.emulator.registry import Registry
from spcs_local.emulator.registry_front import RegistryFront, docker_login
from spcs_local.emulator.service_functions import Caller
from spcs_local.emulator.statements import Statements, Storage

CONTAINER_HOST = "snowflake.local-spcs.internal"  # how containers name the emulator (SNOWFLAKE_HOST)
SNOWFLAKE_PORT = 443  # where they reach it (SNOWFLAKE_PORT), as in SPCS; the backend forwards it to the front


def serve(
    host: str,
    port: int,
    data_dir: Path,
    registry: str | None = None,
    poll_seconds: float = 20.0,
    external_services: tuple[tuple[ObjectName, dict[str, str]], ...] = (),
    registry_upstream: str | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM. An external service, `name:endpoint=url`, is a service that runs
    elsewhere (`make demo` runs the Echo service as a process), callable by service functions. With
    `registry_upstream`, where Debian's registry runs, the emulator serves its HTTPS door at `registry`."""
    app = fakesnow_fixes.install(data_dir)
    spcs_dir = data_dir / "spcs"
    spcs_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    (spcs_dir / "token").unlink(missing_ok=True)  # the one token of earlier versions: each workload has its own
    backend = DockerBackend.connect(instance_of(data_dir)) if registry else None
    doors, settings, tls_files, gateway = Doors(), Settings(ACCOUNT, CONTAINER_HOST, SNOWFLAKE_PORT, port), None, None
    if backend and host in ("127.0.0.1", "localhost"):
        gateway, subnet = backend.front()
        doors = Doors(frozenset(LOOPBACK_NAMES | {CONTAINER_HOST}), (*LOOPBACK, subnet))
        tls_files = tls.ensure(spcs_dir / "tls", (CONTAINER_HOST, "localhost"), (gateway, "127.0.0.1"))
        backend.use_certificates(tls_files)
        settings = Settings(ACCOUNT, CONTAINER_HOST, SNOWFLAKE_PORT, port, {CONTAINER_HOST: gateway}, tls_files.bundle)
    held = Registry(registry, registry_upstream) if registry else None
    catalog = Catalog(spcs_dir / "catalog.json", backend, held, settings)
    for name, endpoints in external_services:
        catalog.register_external_service(name, endpoints)
    plain_sockets = [listen(host, port)]
    door = registry_upstream and tls_files and registry  # the registry's HTTPS door, at the registry's address
    door_sockets = [listen("127.0.0.1", int(door.rsplit(":", 1)[1]))] if door else []
    stages = fakesnow_fixes.Storage()
    catalog.stage_folder = stages.folder  # what stage volumes mount
    catalog.create_event_table, catalog.record = event_table.create, event_table.write
    event_table.create(catalog.event_table)  # the account's, as Snowflake has it
    gates = tls.gate_context(tls_files) if tls_files else None  # how the local SPCS calls the instances
    with front_of(app, catalog, stages, poll_seconds, doors, gates) as front:
        # h11, whose headers are bounded (httptools' are not); errors only: a stranger's malformed request must
        # not grow the log.
        options: dict[str, Any] = {"http": "h11", "h11_max_incomplete_event_size": HEADER_BYTES,
                                   "log_level": "error", "timeout_graceful_shutdown": 2}  # fmt: skip
        servers = [Server(uvicorn.Config(front, **options), front.cancel_all)]
        sockets = [plain_sockets]
        if tls_files and gateway:
            https = uvicorn.Config(front, ssl_certfile=tls_files.certificate, ssl_keyfile=tls_files.key, **options)
            servers.append(Server(https, front.cancel_all, signals=False))
            sockets.append([listen(gateway, port)])
        if tls_files and door_sockets:
            own_token = secrets.token_urlsafe(32)  # the local SPCS's pulls and remote builds' pushes log in with it
            app = RegistryFront(f"http://{registry_upstream}", front.user_of, own_token)
            if backend:
                backend.registry_login = docker_login(own_token)
            https = uvicorn.Config(app, ssl_certfile=tls_files.certificate, ssl_keyfile=tls_files.key,
                                   lifespan="off", **options)  # fmt: skip
            servers.append(Server(https, front.cancel_all, signals=False))
            sockets.append(door_sockets)
        servers[0].others = servers[1:]
        catalog.reconcile()
        idle = threading.Event()
        threading.Thread(target=catalog.watch, args=(idle,), name="auto-suspend-and-events", daemon=True).start()
        ingress = Ingress(catalog, front.user_of, password_ok, gates, front.caller_token)
        ingress.start()
        try:
            asyncio.run(serve_all(servers, sockets))
        finally:
            idle.set()
            ingress.close()
            if backend:
                backend.close()


async def serve_all(servers: list["Server"], sockets: list[list[socket.socket]]) -> None:
    await asyncio.gather(*(server.serve(sockets=own) for server, own in zip(servers, sockets, strict=False)))


class Server(uvicorn.Server):
    """uvicorn's server, which first cancels the statements running, and what they wait on, when it is told to
    stop: what they wrote is rolled back instead of committed while the server drains. The first server takes
    the signals and tells the others (the HTTPS front for containers) to stop with it."""

    def __init__(self, config: uvicorn.Config, cancel: Callable[[], None], signals: bool = True) -> None:
        super().__init__(config)
        self.cancel, self.signals = cancel, signals
        self.others: list[Server] = []

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:
        return super().capture_signals() if self.signals else contextlib.nullcontext()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.cancel()
        for other in self.others:
            other.should_exit = True
        super().handle_exit(sig, frame)


@contextlib.contextmanager
def front_of(
    app: Any, catalog: Catalog, stages: Storage, poll_seconds: float, doors: Doors | None = None,
    gates: ssl.SSLContext | None = None,
) -> Iterator[Front]:  # fmt: skip
    """The Snowflake front over fakesnow's app and the catalog, with the catalog's service functions
    callable in SQL (through the instances' gates with `gates`), for as long as the block runs."""
    caller = Caller(catalog.function_urls, gates)
    functions = fakesnow_fixes.DuckFunctions(caller.invoke)
    catalog.on_functions_changed = lambda: functions.sync(list(catalog.functions.values()))
    catalog.on_functions_changed()
    front = Front(app, Statements(catalog, stages), caller, poll_seconds, doors, catalog.valid_token, catalog.user_keys)
    try:
        yield front
    finally:
        front.close()
        functions.close()
        caller.shutdown()


def instance_of(data_dir: Path) -> str:
    """The label on what one local SPCS starts on Docker: its data dir's, so that two never mix."""
    return hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:8]


def parse_external_service(text: str) -> tuple[ObjectName, dict[str, str]]:
    """`echo_service:echoendpoint=http://127.0.0.1:8001`, the name in TUTORIAL_DB.DATA_SCHEMA unless qualified."""
    name, _, endpoint = text.partition(":")
    endpoint_name, _, url = endpoint.partition("=")
    parts = [part.upper() for part in name.split(".")]
    if not url.startswith("http://") or not endpoint_name or not 1 <= len(parts) <= 3:
        raise ValueError(f"write it as name:endpoint=http://host:port, not {text!r}")
    full = [DATABASE, SCHEMA][: 3 - len(parts)] + parts
    return ObjectName(*full), {endpoint_name.lower(): url.rstrip("/")}


def listen(address: str, port: int) -> socket.socket:
    """A socket that listens from now on: a connection that comes before its server runs (a pull from the
    registry's door by a service coming back) waits for it instead of being refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address, port))
    sock.listen(128)
    return sock
