"""The emulator process: fakesnow behind the Snowflake front, and, with a registry, the local SPCS.

Without `registry`, it is the embedded Snowflake of `make demo` and the tests: SQL and stages only.
With it (`make local-up`), SPCS statements run containers on Docker. The emulator then listens on
127.0.0.1 for `snow` and the host, and on Docker's bridge gateway for the containers, which reach it
as host.docker.internal. Stopping it (SIGTERM, SIGINT) removes every container and network it started;
the catalog stays, and the services come back when it starts again.
"""

import hashlib
import socket
from pathlib import Path

import uvicorn

from spcs_local.emulator import ACCOUNT, OAUTH_TOKEN, fakesnow_fixes
from spcs_local.emulator.catalog import Catalog, Settings
from spcs_local.emulator.docker_backend import DockerBackend
from spcs_local.emulator.front import Front
from spcs_local.emulator.registry import Registry
from spcs_local.emulator.statements import Statements

CONTAINER_HOST = "host.docker.internal"  # how containers name the emulator (SNOWFLAKE_HOST)


def serve(host: str, port: int, data_dir: Path, registry: str | None = None, poll_seconds: float = 20.0) -> None:
    """Serve until SIGINT or SIGTERM."""
    app = fakesnow_fixes.install(data_dir)
    spcs_dir = data_dir / "spcs"
    spcs_dir.mkdir(parents=True, exist_ok=True)
    token_file = spcs_dir / "token"  # the OAuth token SPCS mounts in each container
    token_file.write_text(OAUTH_TOKEN)
    token_file.chmod(0o644)
    backend = DockerBackend.connect(instance_of(data_dir)) if registry else None
    settings = Settings(ACCOUNT, CONTAINER_HOST, port, str(token_file.resolve()), {CONTAINER_HOST: "host-gateway"})
    catalog = Catalog(spcs_dir / "catalog.json", backend, Registry(registry) if registry else None, settings)
    addresses = [host]
    gateway = backend.gateway() if backend else None
    if gateway and host in ("127.0.0.1", "localhost"):
        addresses.append(gateway)
    sockets = [listen(address, port) for address in addresses]
    server = uvicorn.Server(uvicorn.Config(Front(app, Statements(catalog, fakesnow_fixes.StageFiles()), poll_seconds),
                                          log_level="warning", timeout_graceful_shutdown=2))  # fmt: skip
    catalog.reconcile()
    try:
        server.run(sockets=sockets)
    finally:
        if backend:
            backend.close()


def instance_of(data_dir: Path) -> str:
    """The label on what one local SPCS starts on Docker: its data dir's, so that two never mix."""
    return hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:8]


def listen(address: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address, port))
    return sock
