"""Run SPCS specification files on the local Docker engine, the way SPCS runs them.

    python -m spcs_local.runner service echo_service echo-service/echo_spec.yaml \\
                                job tutorial_3_job_service tutorial-3-service-to-service/service_to_service_spec.yaml

Each (kind, name, spec) runs in order on one user-defined network, with the embedded Snowflake
emulator beside them, as services and jobs share one schema in SPCS:

- a spec's image `/<db>/<schema>/<repository>/<image>:<tag>` runs the local image `<image>:<tag>`;
- `command` replaces the image's ENTRYPOINT, `args` its CMD, and `env` values are passed as strings;
- a service is reachable from the others by its DNS name (`echo_service` -> `echo-service`), and its
  readiness probe is polled (through a port published on 127.0.0.1) before anything after it runs;
- a job gets the variables SPCS injects (SNOWFLAKE_ACCOUNT, _HOST, _PORT, _DATABASE, _SCHEMA) and the
  OAuth token file, pointing at the emulator, plus SNOWFLAKE_PROTOCOL=http, which SPCS doesn't need;
- a job ends DONE when its containers exit 0 and FAILED otherwise, printed as EXECUTE JOB SERVICE
  does, followed by each container's logs as SYSTEM$GET_SERVICE_LOGS shows them.

Everything it creates is removed when it ends, also on failure, Ctrl-C or SIGTERM.
"""

import contextlib
import json
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
import yaml
from docker.models.containers import Container
from docker.models.networks import Network

from spcs_local.emulator import ACCOUNT, DATABASE, OAUTH_TOKEN, SCHEMA, client_env
from spcs_local.processes import stop_on_sigterm, wait_for_http

EMULATOR_IMAGE = "spcs-local-emulator:latest"
EMULATOR_NAME = "snowflake-emulator"  # its DNS name on the network, as SNOWFLAKE_HOST
EMULATOR_PORT = 8080
TOKEN_PATH = "/snowflake/session/token"
LABEL = "spcs-local.runner"


def local_image(spec_image: str) -> str:
    """`/tutorial_db/data_schema/tutorial_repository/my_job_image:latest` -> `my_job_image:latest`."""
    return spec_image.rstrip("/").rsplit("/", 1)[-1]


def dns_name(service_name: str) -> str:
    """SPCS's DNS name for a service: lowercase, with `_` as `-`."""
    return service_name.lower().replace("_", "-")


def spec_env(env: dict[str, Any] | None) -> dict[str, str]:
    """A spec's env as SPCS gives it to the container: every value a string."""
    return {name: value if isinstance(value, str) else json.dumps(value) for name, value in (env or {}).items()}


class ContainerProcess:
    """A container seen as a process (processes.Pollable), for `wait_for_http`."""

    def __init__(self, container: Container) -> None:
        self.container, self.args = container, container.name
        self.returncode: int | None = None

    def poll(self) -> int | None:
        self.container.reload()
        if self.container.status in ("exited", "dead"):
            self.returncode = self.container.attrs["State"]["ExitCode"]
        return self.returncode


@dataclass
class LocalSPCS:
    """One network with the emulator on it, where services and jobs run; `close()` removes it all."""

    client: docker.DockerClient = field(default_factory=docker.from_env)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    containers: list[Container] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.network: Network = self.client.networks.create(f"spcs-local-{self.run_id}", labels={LABEL: self.run_id})
        self.token_dir = tempfile.TemporaryDirectory()
        token_file = Path(self.token_dir.name, "token")
        token_file.write_text(OAUTH_TOKEN)
        token_file.chmod(0o644)
        self.token_file = token_file

    def start(self, alias: str, image: str, ports: list[int], **options: Any) -> Container:
        container = self.client.containers.create(
            image,
            name=f"{alias}-{self.run_id}",
            labels={LABEL: self.run_id},
            network=self.network.name,
            networking_config={self.network.name: self.client.api.create_endpoint_config(aliases=[alias])},
            ports={f"{port}/tcp": ("127.0.0.1", None) for port in ports},
            **options,
        )
        self.containers.append(container)
        container.start()
        container.reload()
        return container

    def host_port(self, container: Container, port: int) -> int:
        return int(container.ports[f"{port}/tcp"][0]["HostPort"])

    def start_emulator(self) -> dict[str, str]:
        """Start the emulator; returns the env a host client needs to reach it."""
        emulator = self.start(EMULATOR_NAME, EMULATOR_IMAGE, [EMULATOR_PORT])
        port = self.host_port(emulator, EMULATOR_PORT)
        wait_for_http(f"http://127.0.0.1:{port}/healthcheck", ContainerProcess(emulator), timeout=60)
        return client_env(port)

    def run_service(self, name: str, spec: dict) -> None:
        """Start each container of a service spec and wait until its readiness probe answers 200."""
        for container_spec in spec["spec"]["containers"]:
            probe = container_spec.get("readinessProbe")
            container = self.start(
                dns_name(name), local_image(container_spec["image"]), [probe["port"]] if probe else [],
                **self.overrides(container_spec),
            )  # fmt: skip
            if probe:
                url = f"http://127.0.0.1:{self.host_port(container, probe['port'])}{probe['path']}"
                wait_for_http(url, ContainerProcess(container), timeout=60)
        print(f"Service {name.upper()} is READY (DNS name {dns_name(name)}).", flush=True)

    def run_job(self, name: str, spec: dict) -> bool:
        """Run a job spec to its end; print its status and logs as SPCS would. True when DONE."""
        spcs_env = {
            "SNOWFLAKE_ACCOUNT": ACCOUNT,
            "SNOWFLAKE_HOST": EMULATOR_NAME,
            "SNOWFLAKE_PORT": str(EMULATOR_PORT),
            "SNOWFLAKE_DATABASE": DATABASE,
            "SNOWFLAKE_SCHEMA": SCHEMA,
            "SNOWFLAKE_PROTOCOL": "http",
        }
        started = []
        for container_spec in spec["spec"]["containers"]:
            options = self.overrides(container_spec)
            options["environment"] = {**spcs_env, **options["environment"]}
            options["volumes"] = {str(self.token_file): {"bind": TOKEN_PATH, "mode": "ro"}}
            alias = f"{dns_name(name)}-{container_spec['name']}"
            container = self.start(alias, local_image(container_spec["image"]), [], **options)
            started.append((container_spec["name"], container))
        codes = {spec_name: container.wait()["StatusCode"] for spec_name, container in started}
        done = all(code == 0 for code in codes.values())
        if done:
            print(f"Job {name.upper()} completed successfully with status: DONE.")
        else:
            failed = ", ".join(f"container {n} exited with code {code}" for n, code in codes.items() if code != 0)
            print(f"Job {name.upper()} failed with status: FAILED ({failed}).")
        for spec_name, container in started:
            print(f"SYSTEM$GET_SERVICE_LOGS('{name}', 0, '{spec_name}'):")
            print(container.logs().decode(errors="replace").rstrip(), flush=True)
        return done

    def overrides(self, container_spec: dict) -> dict[str, Any]:
        """`command` replaces ENTRYPOINT and `args` replaces CMD, as in SPCS."""
        options: dict[str, Any] = {"environment": spec_env(container_spec.get("env"))}
        if "command" in container_spec:
            options["entrypoint"] = container_spec["command"]
        if "args" in container_spec:
            options["command"] = container_spec["args"]
        return options

    def close(self) -> None:
        for container in self.containers:
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
        with contextlib.suppress(docker.errors.NotFound):
            self.network.remove()
        self.token_dir.cleanup()


@contextlib.contextmanager
def local_spcs() -> Iterator[LocalSPCS]:
    spcs = LocalSPCS()
    try:
        yield spcs
    finally:
        spcs.close()


def main(argv: list[str]) -> int:
    if not argv or len(argv) % 3:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    steps = [(argv[i], argv[i + 1], Path(argv[i + 2])) for i in range(0, len(argv), 3)]
    stop_on_sigterm()
    all_done = True
    try:
        with local_spcs() as spcs:
            spcs.start_emulator()
            for kind, name, spec_file in steps:
                spec = yaml.safe_load(spec_file.read_text())
                statement = "CREATE SERVICE" if kind == "service" else "EXECUTE JOB SERVICE"
                print(
                    f"\n-- {statement} {name} FROM SPECIFICATION_FILE='{spec_file}' (on the local engine)", flush=True
                )
                if kind == "service":
                    spcs.run_service(name, spec)
                else:
                    all_done = spcs.run_job(name, spec) and all_done
    except KeyboardInterrupt:
        print("Stopped; the containers and the network are removed.", file=sys.stderr)
        return 130
    except (docker.errors.DockerException, RuntimeError, TimeoutError) as error:
        print(f"Run failed: {error}", file=sys.stderr)
        return 1
    return 0 if all_done else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
