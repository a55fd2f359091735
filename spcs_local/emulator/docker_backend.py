"""Runs workloads on the local Docker engine, the way SPCS runs a service or a job instance.

- Images are pulled from the registry first, so that an image that was never pushed fails here too.
- The containers of one instance share a network namespace (as in SPCS): the first joins the schema's
  network with the service's DNS names and publishes the ports on 127.0.0.1; the others join it.
- Services restart when they exit, as in SPCS; job containers run once.
- Status comes from what runs: a container is READY once its readiness probe answers 200.
- Every workload also joins the local SPCS's own network, whose gateway is where the emulator listens for
  containers: only the containers of this local SPCS are on it (the emulator refuses other peers).

Everything it creates carries the labels of its local SPCS instance, so that `close()` (and a restart)
finds all of it again, and two local SPCS instances on one engine leave each other alone.
"""

import contextlib
import hashlib
import io
import ipaddress
import re
import tarfile
import threading
import urllib.error
import urllib.request
from datetime import datetime
from typing import Any

import docker
import docker.errors
import requests.exceptions
from docker.models.containers import Container as DockerContainer

from spcs_local.emulator.workload import BackendError, ContainerState, Workload

INSTANCE = "spcs-local.instance"
WORKLOAD = "spcs-local.workload"
INDEX = "spcs-local.index"
NAME = "spcs-local.container"
READINESS = "spcs-local.readiness"
STOP_SECONDS = 5


class DockerBackend:
    def __init__(self, instance: str, client: docker.DockerClient) -> None:
        self.instance, self.client = instance, client
        self.lock = threading.Lock()  # networks are created on first use, from several threads

    @classmethod
    def connect(cls, instance: str) -> "DockerBackend | None":
        """The backend on the engine that DOCKER_HOST (or the default socket) names; None without one."""
        try:
            client = docker.from_env()
            client.ping()
        except docker.errors.DockerException:
            return None
        return cls(instance, client)

    def front(self) -> tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """The local SPCS's own network, which every workload joins: the host's address on it (its gateway),
        where containers reach the emulator, and its subnet, the peers the emulator answers there."""
        config = self.network("front").attrs["IPAM"]["Config"][0]
        subnet = ipaddress.ip_network(config["Subnet"])
        return config.get("Gateway") or str(next(subnet.hosts())), subnet

    # --- running -------------------------------------------------------------------------------

    def start(self, workload: Workload) -> None:
        self.remove(workload.key)
        for container in workload.containers:
            self.pull(container.image)
        network, front = self.network(workload.network), self.network("front")
        first = None
        for index, spec in enumerate(workload.containers):
            options: dict[str, Any] = {
                "name": self.name(workload.key, spec.name),
                "labels": {
                    INSTANCE: self.instance,
                    WORKLOAD: workload.key,
                    INDEX: str(index),
                    NAME: spec.name,
                    READINESS: f"{spec.readiness.port}{spec.readiness.path}" if spec.readiness else "",
                },
                "environment": spec.env,
                "volumes": {host: {"bind": path, "mode": "ro"} for path, host in workload.files.items()}
                | {
                    self.volume(workload.key, name): {"bind": path, "mode": "rw"} for name, path in spec.volumes.items()
                },
                "tmpfs": {path: f"size={size}" for path, size in spec.tmpfs.items()},
                "restart_policy": {"Name": "no"} if workload.job else {"Name": "unless-stopped"},
                "stop_signal": "SIGTERM",
            }
            if spec.command is not None:
                options["entrypoint"] = spec.command
            if spec.args is not None:
                options["command"] = spec.args
            if spec.memory:
                options["mem_limit"] = spec.memory
            if spec.nano_cpus:
                options["nano_cpus"] = spec.nano_cpus
            if first is None:
                endpoint = self.client.api.create_endpoint_config(aliases=list(workload.hostnames))
                options |= {
                    "hostname": workload.hostnames[0],
                    "network": network.name,
                    "networking_config": {network.name: endpoint},
                    "ports": {f"{port}/tcp": ("127.0.0.1", None) for port in workload.ports},
                    "extra_hosts": workload.extra_hosts,
                }
            else:
                options["network_mode"] = f"container:{first.id}"
            try:
                container = self.client.containers.create(spec.image, **options)
                if first is None:
                    front.connect(container)
                if spec.secret_files:  # into the container itself, never a file on the host
                    container.put_archive("/", archive(spec.secret_files))
                container.start()
            except docker.errors.DockerException as error:
                raise BackendError(f"Container {spec.name} could not start: {explain(error)}") from None
            first = first or container

    def name(self, key: str, name: str) -> str:
        """A container's or a volume's name: readable, and unique per workload whatever its name holds."""
        return f"spcs-{self.instance}-{slug(key.split('#')[0])[:60]}-{digest(key)}-{slug(name)}"

    def volume(self, key: str, name: str) -> str:
        """A `local` volume of the spec: a Docker volume shared by the instance's containers."""
        return self.name(key, name)

    def pull(self, image: str) -> None:
        repository, _, tag = image.rpartition(":")
        try:
            self.client.images.pull(repository, tag=tag)
        except docker.errors.DockerException as error:
            raise BackendError(f"Failed to pull image {image}: {explain(error)}") from None

    def network(self, name: str) -> Any:
        full_name = f"spcs-{self.instance}-{slug(name)[:40]}-{digest(name)}"
        with self.lock:
            existing = self.client.networks.list(names=[full_name])
            if existing:
                return existing[0]
            return self.client.networks.create(full_name, labels={INSTANCE: self.instance})

    # --- looking -------------------------------------------------------------------------------

    def containers(self, key: str | None = None) -> list[DockerContainer]:
        labels = [f"{INSTANCE}={self.instance}"] + ([f"{WORKLOAD}={key}"] if key else [])
        found = self.client.containers.list(all=True, filters={"label": labels})
        return sorted(found, key=lambda c: int(c.labels.get(INDEX, "0")))

    def states(self, key: str) -> list[ContainerState] | None:
        containers = self.containers(key)
        return [state_of(container) for container in containers] or None

    def wait(self, key: str, cancelled: threading.Event | None = None) -> list[ContainerState]:
        for container in self.containers(key):
            while not (cancelled and cancelled.is_set()):
                try:
                    container.wait(timeout=1)
                    break
                except docker.errors.NotFound:
                    break
                except requests.exceptions.RequestException:  # not yet: look at `cancelled` again
                    continue
        return self.states(key) or []

    def logs(self, key: str, container: str, lines: int) -> str:
        for found in self.containers(key):
            if found.labels.get(NAME) == container:
                with contextlib.suppress(docker.errors.NotFound):
                    return found.logs(tail=lines).decode(errors="replace")
        return ""

    def keys(self) -> set[str]:
        return {container.labels[WORKLOAD] for container in self.containers()}

    # --- stopping ------------------------------------------------------------------------------

    def remove(self, key: str) -> None:
        containers = self.containers(key)
        for container in reversed(containers):  # the namespace's owner last
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                container.stop(timeout=STOP_SECONDS)
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True, v=True)
        prefix = self.name(key, "")
        for volume in self.client.volumes.list(filters={"name": prefix}):
            with contextlib.suppress(docker.errors.DockerException):
                volume.remove(force=True)

    def close(self) -> None:
        """Remove every container and network of this local SPCS."""
        for key in self.keys():
            self.remove(key)
        for network in self.client.networks.list(filters={"label": f"{INSTANCE}={self.instance}"}):
            with contextlib.suppress(docker.errors.DockerException):
                network.remove()


def state_of(container: DockerContainer) -> ContainerState:
    """SPCS's view of a container: PENDING, READY (its probe answers), DONE or FAILED."""
    state = container.attrs["State"]
    exit_code = state.get("ExitCode") if state["Status"] in ("exited", "dead", "restarting") else None
    host_ports = {
        int(port.split("/")[0]): int(bindings[0]["HostPort"])
        for port, bindings in (container.attrs["NetworkSettings"].get("Ports") or {}).items()
        if bindings
    }
    if state["Status"] == "running":
        status, message = ready(container.labels.get(READINESS, ""), host_ports)
    elif state["Status"] in ("exited", "dead", "restarting"):
        status = "DONE" if exit_code == 0 and state["Status"] != "restarting" else "FAILED"
        if state.get("OOMKilled"):
            message = "Container was killed: it ran out of memory (resources.limits.memory)."
        elif status == "DONE":
            message = "Completed successfully"
        else:
            message = f"Container exited with code {exit_code}" + (
                ", restarting" if state["Status"] == "restarting" else ""
            )
    else:
        status, message = "PENDING", "Waiting to start."
    networks = container.attrs["NetworkSettings"].get("Networks") or {}
    image = container.attrs["Config"]["Image"]
    digests = (container.image.attrs.get("RepoDigests") or []) if container.image else []
    return ContainerState(
        name=container.labels.get(NAME, container.name),
        status=status,
        message=message,
        image=image,
        exit_code=exit_code,
        digest=digests[0].split("@")[-1] if digests else None,
        started=parse_time(state.get("StartedAt")),
        restarts=container.attrs.get("RestartCount", 0),
        ports=host_ports,
        ip=next((n.get("IPAddress") for n in networks.values() if n.get("IPAddress")), None),
    )


def ready(probe: str, host_ports: dict[int, int]) -> tuple[str, str]:
    """A readiness probe: GET on the probe's port and path must answer 200, as in SPCS."""
    if not probe:
        return "READY", "Running"
    port, _, path = probe.partition("/")
    url = f"http://127.0.0.1:{host_ports.get(int(port), 0)}/{path}"
    try:
        with urllib.request.urlopen(url, timeout=1) as reply:
            if reply.status == 200:
                return "READY", "Running"
    except (urllib.error.URLError, OSError, ValueError):
        pass
    return "PENDING", f"Readiness probe is failing at path: /{path}, port: {port}"


def parse_time(text: str | None) -> datetime | None:
    if not text or text.startswith("0001-"):
        return None
    return datetime.fromisoformat(re.sub(r"(\.\d{6})\d*", r"\1", text.replace("Z", "+00:00")))


def slug(name: str) -> str:
    """A name as Docker allows it in container, network and volume names."""
    return re.sub(r"[^a-z0-9_.-]+", "-", name.lower()).strip("-.") or "x"


def archive(files: dict[str, str]) -> bytes:
    """A tar of the files at their absolute paths, read-only, with the folders they need."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode = len(data), 0o444
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:10]


def explain(error: docker.errors.DockerException) -> str:
    text = getattr(error, "explanation", None) or str(error)
    return " ".join(str(text).split())
