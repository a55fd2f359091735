"""Runs workloads on the local Docker engine, the way SPCS runs a service or a job instance.

- Images are pulled from the registry first, so that an image that was never pushed fails here too.
- The containers of one instance share a network namespace (as in SPCS), which a small guard container
  holds: it joins the schema's network as `instances.<DNS name>`, and the schema's names network, where the
  service's DNS names follow its readiness (`follow_readiness`); publishes a gate for each port on 127.0.0.1
  (TLS, for the local SPCS's certificate alone); and sets the namespace's firewall (`guard_scripts`) before any
  container of the spec starts. Port 443 of SNOWFLAKE_HOST
  goes to the emulator's HTTPS front; the services of the schema are reachable; egress goes only where the
  workload's integrations allow (host and port; a `*.domain` or `0.0.0.0` rule by port only); every other
  connection is refused at once. Only the guard has NET_ADMIN, so the spec's containers can't undo it.
- Services restart when they exit, as in SPCS; job containers run once.
- Status comes from what runs, and from the probes (`probes.py`): a container is READY once its readiness
  probe answers 200, and its liveness probe restarts it.
- Every workload also joins the local SPCS's own network, whose gateway is where the emulator listens for
  containers: only the containers of this local SPCS are on it (the emulator refuses other peers).

Everything it creates carries the labels of its local SPCS instance, so that `close()` (and a restart)
finds all of it again, and two local SPCS instances on one engine leave each other alone.
"""

import concurrent.futures
import contextlib
import hashlib
import io
import ipaddress
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import astuple
from datetime import datetime
from typing import Any

import docker
import docker.errors
import requests.exceptions
from docker.models.containers import Container as DockerContainer

from spcs_local.emulator.docker_containers import (
    GATES,
    NAME,
    PROBES,
    archive,
    folders,
    owner,
    parse_time,
    published,
    state_of,
)
from spcs_local.emulator.guard_scripts import FIREWALL, GATE, GUARD_DOCKERFILE, GUARD_SCRIPT, gates_for, resolvers
from spcs_local.emulator.probes import Prober, Watched
from spcs_local.emulator.tls import TlsFiles, gate_context
from spcs_local.emulator.workload import (
    BackendError,
    Container,
    ContainerState,
    Probe,
    Usage,
    Workload,
    stamped,
)

INSTANCE = "spcs-local.instance"
WORKLOAD = "spcs-local.workload"
INDEX = "spcs-local.index"
BLOCK = "spcs-local.block"  # on a block volume: the service it belongs to
GUARD = "spcs-local.guard"
NAMES = "spcs-local.names"  # on a guard: the schema's names network, then the service's DNS names
STOP_SECONDS = 5
GUARD_SECONDS = 20  # for the guard to set the firewall
BUILD_SECONDS = 1800  # the longest a remote build's step may stay silent


class DockerBackend:
    def __init__(self, instance: str, client: docker.DockerClient) -> None:
        self.instance, self.client = instance, client
        self.lock = threading.Lock()  # networks are created on first use, from several threads
        self.image_lock = threading.Lock()  # and the guard's image
        self.naming = threading.Lock()  # an instance joins its names network again from one thread at a time
        self.prober = Prober(self.restart_container)
        self.tls: TlsFiles | None = None
        self.registry_login: dict[str, str] | None = None  # what it pulls and pushes with: the local SPCS's own

    def use_certificates(self, files: TlsFiles) -> None:
        """The gates' certificate, and the local SPCS's own, with which it calls them (the probes too)."""
        self.tls = files
        self.prober.context = gate_context(files)

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
        return gateway_of(self.network("front"))

    # --- running -------------------------------------------------------------------------------

    def start(self, workload: Workload) -> None:
        """Start the workload's guard, then its containers once the firewall is set; on a failure, nothing of it
        is left."""
        self.remove(workload.key)
        try:
            with concurrent.futures.ThreadPoolExecutor() as pool:  # the guard starts while the images are pulled
                pulls = [pool.submit(self.pull, container.image) for container in workload.containers]
                guard = self.create_guard(workload)
                starting = pool.submit(self.start_guard, workload, guard)
                for pull in pulls:
                    pull.result()
                # Created while the guard starts and sets the firewall; started only once it is set.
                created = [(self.create(workload, i, spec, guard), spec) for i, spec in enumerate(workload.containers)]
                starting.result()
            self.wait_for_firewall(workload.key, guard)
            for container, spec in created:
                try:
                    container.start()
                except docker.errors.DockerException as error:
                    raise BackendError(f"Container {spec.name} could not start: {explain(error)}") from None
        except BackendError:
            self.remove(workload.key)
            raise

    def create(self, workload: Workload, index: int, spec: Container, guard: DockerContainer) -> DockerContainer:
        """A container of the spec, in its guard's network namespace, with its files written in."""
        probes = {"readiness": spec.readiness, "liveness": spec.liveness}
        options: dict[str, Any] = {
            "name": self.name(workload.key, spec.name),
            "labels": {
                INSTANCE: self.instance,
                WORKLOAD: workload.key,
                INDEX: str(index),
                NAME: spec.name,
                PROBES: json.dumps({kind: probe and astuple(probe) for kind, probe in probes.items()}),
            },
            "environment": spec.env,
            "network_mode": f"container:{guard.id}",
            "volumes": {host: {"bind": path, "mode": "ro"} for path, host in workload.mounts.items()}
            | {self.volume(workload.key, name): {"bind": path, "mode": "rw"} for name, path in spec.volumes.items()}
            | {self.block_volume(block): {"bind": path, "mode": "rw"} for block, path in spec.block.items()}
            | {host: {"bind": path, "mode": "rw"} for host, path in spec.binds.items()},
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
        try:
            container = self.client.containers.create(spec.image, **options)
            if spec.files:  # into the container itself, never a file on the host
                written = {path: (file.text.encode(), file.mode) for path, file in spec.files.items()}
                container.put_archive("/", archive(written, owner(container)))
            if spec.owners:  # the volumes' uid and gid, on their mount points; a stage's open to the host's user too
                container.put_archive("/", folders(spec.owners, set(spec.binds.values())))
        except docker.errors.DockerException as error:
            raise BackendError(f"Container {spec.name} could not start: {explain(error)}") from None
        return container

    def create_guard(self, workload: Workload) -> DockerContainer:
        """The container that holds the workload's network namespace and sets its firewall."""
        if self.tls is None:
            raise BackendError("The local SPCS has no certificates for the instances' gates.")
        network, names, front = self.network(workload.network), self.names_network(workload), self.network("front")
        gateway, _ = gateway_of(front)
        (host, schema), (names_host, names_subnet) = gateway_of(network), gateway_of(names)
        ports = [str(port) for port in workload.front]
        gates = gates_for(workload.ports)
        arguments = [gateway, *ports, f"{schema} {names_subnet}", " ".join(resolvers()), f"{host} {names_host}",
                     " ".join(f"{gate}:{port}" for port, gate in gates.items())]  # fmt: skip
        endpoint = self.client.api.create_endpoint_config(aliases=list(workload.instance_hostnames))
        try:
            guard = self.client.containers.create(
                self.guard_image(),
                ["sh", "-c", GUARD_SCRIPT, "guard", *arguments, *workload.egress],
                name=self.name(workload.key, "_guard"),
                labels={INSTANCE: self.instance, WORKLOAD: workload.key, GUARD: "1", GATES: json.dumps(gates)}
                | ({} if workload.job else {NAMES: json.dumps([names.name, *workload.hostnames])}),
                network=network.name,  # no hostname: Docker would make it a name on the front network too
                networking_config={network.name: endpoint},
                ports={f"{gate}/tcp": ("127.0.0.1", None) for gate in gates.values()},
                extra_hosts=workload.extra_hosts,
                cap_drop=["ALL"],
                cap_add=["NET_ADMIN", "NET_RAW"],
                restart_policy={"Name": "no"},
                mem_limit=64 * 2**20,
            )
            front.connect(guard)
            names.connect(guard, aliases=list(workload.hostnames) if workload.job else None)  # a service's: once READY
            gate = {"gate.py": GATE, "ca.pem": self.tls.ca.read_bytes(), "gate.pem": self.tls.gate.read_bytes(),
                    "gate-key.pem": self.tls.gate_key.read_bytes()}  # fmt: skip
            guard.put_archive("/", archive({f"/gate/{name}": (data, 0o400) for name, data in gate.items()}, (0, 0)))
        except docker.errors.DockerException as error:
            raise BackendError(f"The network of {workload.key} could not be set up: {explain(error)}") from None
        return guard

    @staticmethod
    def start_guard(workload: Workload, guard: DockerContainer) -> None:
        try:
            guard.start()
        except docker.errors.DockerException as error:
            raise BackendError(f"The network of {workload.key} could not be set up: {explain(error)}") from None

    @staticmethod
    def wait_for_firewall(key: str, guard: DockerContainer) -> None:
        deadline = time.monotonic() + GUARD_SECONDS
        while b"ready" not in guard.logs():
            guard.reload()
            if guard.status != "running" or time.monotonic() > deadline:
                problem = " ".join(guard.logs(tail=5).decode(errors="replace").split())
                raise BackendError(f"The firewall of {key} could not be set: {problem or guard.status}")
            time.sleep(0.01)

    def guard_image(self) -> str:
        tag = f"spcs-local-guard:{hashlib.sha256(GUARD_DOCKERFILE).hexdigest()[:12]}"
        with self.image_lock:
            try:
                self.client.images.get(tag)
            except docker.errors.ImageNotFound:
                try:
                    self.client.images.build(fileobj=io.BytesIO(GUARD_DOCKERFILE), tag=tag, rm=True)
                except docker.errors.DockerException as error:
                    raise BackendError(f"The image of the network guard could not be built: {explain(error)}") from None
        return tag

    def build(self, files: dict[str, bytes], reference: str, log: Callable[[str], None]) -> bool:
        """A remote build: the context built as an image and pushed to the registry as `reference`, each line
        of Docker's output stamped and logged as it comes."""
        context = archive({path: (content, 0o644) for path, content in files.items()}, (0, 0))
        repository, _, tag = reference.rpartition(":")
        try:
            output = self.client.api.build(fileobj=io.BytesIO(context), custom_context=True, tag=reference, rm=True,
                                           forcerm=True, decode=True, timeout=BUILD_SECONDS)  # fmt: skip
            pushing = lambda: self.client.api.push(repository, tag=tag, stream=True, decode=True,  # noqa: E731
                                                   auth_config=self.registry_login)  # fmt: skip
            for step in (lambda: output, pushing):
                for chunk in step():
                    text = chunk.get("stream") or chunk.get("error") or chunk.get("status") or ""
                    for line in text.splitlines():
                        if line.strip():
                            log(stamped(line))
                    if "error" in chunk:
                        return False
        except docker.errors.DockerException as error:
            log(stamped(f"The build failed: {explain(error)}"))
            return False
        return True

    def set_egress(self, key: str, egress: tuple[str, ...]) -> None:
        """A running instance's firewall, made again with this egress: a change of its integrations or their
        rules applies at once, as in SPCS."""
        guard = self.guard(key)
        if guard is None or guard.status != "running":
            return  # nothing runs: the workload gets its egress when it starts
        fixed = guard.attrs["Config"]["Cmd"][3:11]  # $0, the front, its ports, the schema, resolvers, host, gates
        try:
            result = guard.exec_run(["sh", "-c", FIREWALL, *fixed, *egress])
        except docker.errors.DockerException as error:
            raise BackendError(f"The firewall of {key} could not be changed: {explain(error)}") from None
        if result.exit_code != 0:
            problem = " ".join(result.output.decode(errors="replace").split())
            raise BackendError(f"The firewall of {key} could not be changed: {problem}")

    def usage(self, key: str) -> dict[str, Usage]:
        found = {}
        for container in [c for c in self.guarded(key)[1] if c.status == "running"]:
            with contextlib.suppress(docker.errors.DockerException, KeyError, TypeError):  # one that just stopped
                stats = container.stats(stream=False, one_shot=True)
                found[container.labels.get(NAME, container.name)] = Usage(
                    stats["cpu_stats"]["cpu_usage"]["total_usage"] / 1e9, int(stats["memory_stats"]["usage"])
                )
        return found

    def name(self, key: str, name: str) -> str:
        """A container's or a volume's name: readable, and unique per workload whatever its name holds."""
        return f"spcs-{self.instance}-{slug(key.split('#')[0])[:60]}-{digest(key)}-{slug(name)}"

    def volume(self, key: str, name: str) -> str:
        """A `local` volume of the spec: a Docker volume shared by the instance's containers."""
        return self.name(key, name)

    def block_volume(self, block: str) -> str:
        """A block volume: a Docker volume of the service's (service:volume:instance), kept across its restarts
        and upgrades until the service is dropped."""
        service = block.rsplit(":", 2)[0]
        name = f"spcs-{self.instance}-block-{slug(block)[:60]}-{digest(block)}"
        if not self.client.volumes.list(filters={"name": name}):
            self.client.volumes.create(name, labels={INSTANCE: self.instance, BLOCK: service})
        return name

    def drop_volumes(self, service: str) -> None:
        for volume in self.client.volumes.list(
            filters={"label": [f"{INSTANCE}={self.instance}", f"{BLOCK}={service}"]}
        ):
            with contextlib.suppress(docker.errors.DockerException):
                volume.remove(force=True)

    def pull(self, image: str) -> None:
        repository, _, tag = image.rpartition(":")
        try:
            self.client.images.pull(repository, tag=tag, auth_config=self.registry_login)
        except docker.errors.DockerException as error:
            raise BackendError(f"Failed to pull image {image}: {explain(error)}") from None

    def network(self, name: str, internal: bool = False) -> Any:
        full_name = f"spcs-{self.instance}-{slug(name)[:40]}-{digest(name)}"
        with self.lock:
            existing = self.client.networks.list(names=[full_name])
            if existing:
                return existing[0]
            return self.client.networks.create(full_name, labels={INSTANCE: self.instance}, internal=internal)

    # --- looking -------------------------------------------------------------------------------

    def containers(self, key: str | None = None, guards: bool = False) -> list[DockerContainer]:
        """The spec's containers (or, with `guards`, the guards too, first)."""
        labels = [f"{INSTANCE}={self.instance}"] + ([f"{WORKLOAD}={key}"] if key else [])
        found = self.client.containers.list(all=True, filters={"label": labels}, ignore_removed=True)
        found = [c for c in found if guards or GUARD not in c.labels]
        return sorted(found, key=lambda c: (GUARD not in c.labels, int(c.labels.get(INDEX, "0"))))

    def guarded(self, key: str) -> tuple[DockerContainer | None, list[DockerContainer]]:
        """The workload's guard (None when it has none) and the spec's containers, in one listing."""
        found = self.containers(key, guards=True)
        guard = found[0] if found and GUARD in found[0].labels else None
        return guard, [container for container in found if container is not guard]

    def guard(self, key: str) -> DockerContainer | None:
        return self.guarded(key)[0]

    def watch(self, container: DockerContainer, guard: DockerContainer | None) -> None:
        """Probe a running container from now on, once it is first seen running (after its start, or after a
        restart of the local SPCS): the catalog looks at every service every few seconds."""
        if self.prober.seen(container.id) or guard is None or container.attrs["State"]["Status"] != "running":
            return
        probes = json.loads(container.labels.get(PROBES) or "{}")
        urls = published(guard)
        targets = []
        for kind in ("readiness", "liveness"):
            probe = Probe(*probes[kind]) if probes.get(kind) else None
            targets.append((f"{urls.get(probe.port, 'https://127.0.0.1:0')}{probe.path}", probe) if probe else None)
        self.prober.watch(container.id, *targets)

    def restart_container(self, container_id: str) -> datetime | None:
        """Restart a container whose liveness probe failed; when the run that ended had begun."""
        try:
            container = self.client.containers.get(container_id)
            began = parse_time(container.attrs["State"].get("StartedAt"))
            container.restart(timeout=STOP_SECONDS)
        except docker.errors.DockerException:
            return None  # removed meanwhile
        return began

    def states(self, key: str) -> list[ContainerState] | None:
        guard, containers = self.guarded(key)
        for container in containers:
            self.watch(container, guard)
        states = [state_of(container, guard, self.prober) for container in containers]
        if guard is not None and states and not any(state.exit_code is not None for state in states):
            self.follow_readiness(guard, all(state.status == "READY" for state in states))
        return states or None

    def follow_readiness(self, guard: DockerContainer, ready: bool) -> None:
        """The service's DNS names resolve to its READY instances, as in SPCS: an instance gets them on the
        schema's names network once READY, and loses them when it no longer is (Docker's aliases are set when
        a container joins a network, so it joins again)."""
        network, *hostnames = json.loads(guard.labels.get(NAMES) or "[null]")
        attached = (guard.attrs["NetworkSettings"].get("Networks") or {}).get(network)
        if attached is None or bool(set(hostnames) & set(attached.get("Aliases") or [])) == ready:
            return
        with self.naming, contextlib.suppress(docker.errors.DockerException):  # gone meanwhile: nothing to name
            names = self.client.networks.get(network)
            names.disconnect(guard)
            names.connect(guard, aliases=hostnames if ready else None)
            guard.reload()

    def names_network(self, workload: Workload) -> Any:
        """The schema's network of the services' DNS names: internal, so that joining it again never changes
        an instance's routes."""
        return self.network(f"{workload.network}-names", internal=True)

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
        states = self.states(key) or []
        if not (cancelled and cancelled.is_set()):  # the job is over: its guard holds nothing more
            threading.Thread(target=self.stop_guard, args=(key,), daemon=True).start()
        return states

    def stop_guard(self, key: str) -> None:
        guard = self.guard(key)
        if guard is not None:
            with contextlib.suppress(docker.errors.DockerException):
                guard.kill()

    def logs(
        self, key: str, container: str, lines: int, since: datetime | None = None, previous: bool = False,
        stderr_only: bool = False,
    ) -> str:  # fmt: skip
        for found in self.containers(key):
            if found.labels.get(NAME) == container:
                window = {"since": since.timestamp()} if since else {}
                if previous:  # the run before the current one: before it started, after that run began if known
                    began = (self.prober.seen(found.id) or Watched()).previous_start
                    started = parse_time(found.attrs["State"].get("StartedAt"))
                    if started is None:
                        return ""
                    window["until"] = started.timestamp()
                    if began and (since is None or began > since):
                        window["since"] = began.timestamp()
                with contextlib.suppress(docker.errors.NotFound):
                    streams = {"stdout": not stderr_only, "stderr": True}
                    return found.logs(tail=lines, timestamps=True, **streams, **window).decode(errors="replace")
        return ""

    def keys(self) -> set[str]:
        return {container.labels[WORKLOAD] for container in self.containers(guards=True)}

    # --- stopping ------------------------------------------------------------------------------

    def remove(self, key: str) -> None:
        for container in reversed(self.containers(key, guards=True)):  # the namespace's guard last
            if GUARD not in container.labels:  # the guard only sleeps: it needs no time to stop
                with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                    container.stop(timeout=STOP_SECONDS)
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True, v=True)
            self.prober.forget(container.id)
        prefix = self.name(key, "")
        for volume in self.client.volumes.list(filters={"name": prefix}):
            with contextlib.suppress(docker.errors.DockerException):
                volume.remove(force=True)

    def close(self) -> None:
        """Remove every container and network of this local SPCS."""
        self.prober.close()
        for key in self.keys():
            self.remove(key)
        for network in self.client.networks.list(filters={"label": f"{INSTANCE}={self.instance}"}):
            with contextlib.suppress(docker.errors.DockerException):
                network.remove()


def gateway_of(network: Any) -> tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network]:
    config = network.attrs["IPAM"]["Config"][0]
    subnet = ipaddress.ip_network(config["Subnet"])
    return config.get("Gateway") or str(next(subnet.hosts())), subnet


def slug(name: str) -> str:
    """A name as Docker allows it in container, network and volume names."""
    return re.sub(r"[^a-z0-9_.-]+", "-", name.lower()).strip("-.") or "x"


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:10]


def explain(error: docker.errors.DockerException) -> str:
    text = getattr(error, "explanation", None) or str(error)
    return " ".join(str(text).split())
