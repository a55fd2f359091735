"""What a Docker container is to SPCS, and what goes into it: its state (PENDING, READY, DONE, FAILED, from
Docker and the probes), and the files, folders and owners written into it before it starts."""

import contextlib
import io
import json
import tarfile
from datetime import datetime

import docker
import docker.errors
from docker.models.containers import Container as DockerContainer

from spcs_local.emulator.probes import Prober, Watched
from spcs_local.emulator.workload import ContainerState, parse_timestamp

NAME = "spcs-local.container"  # the labels on a container of a spec: its name in the spec
PROBES = "spcs-local.probes"  # and its probes
GATES = "spcs-local.gates"  # on a guard: its gates, port -> gate
PENDING = "Waiting to start."


def published(guard: DockerContainer) -> dict[int, str]:
    """Where the local SPCS reaches each port of the guard's namespace: its gate, published on 127.0.0.1."""
    host_ports = {
        int(port.split("/")[0]): int(bindings[0]["HostPort"])
        for port, bindings in (guard.attrs["NetworkSettings"].get("Ports") or {}).items()
        if bindings
    }
    gates = json.loads(guard.labels.get(GATES) or "{}")
    return {int(port): f"https://127.0.0.1:{host_ports[gate]}" for port, gate in gates.items() if gate in host_ports}


def state_of(container: DockerContainer, guard: DockerContainer | None, prober: Prober) -> ContainerState:
    """SPCS's view of a container: PENDING, READY (its readiness probe passes), DONE or FAILED. Its ports and
    address are its guard's, whose network namespace it shares."""
    state = container.attrs["State"]
    exit_code = state.get("ExitCode") if state["Status"] in ("exited", "dead", "restarting") else None
    urls = published(guard) if guard else {}
    watched = prober.seen(container.id) or Watched()
    if state["Status"] == "running":
        probe = (json.loads(container.labels.get(PROBES) or "{}")).get("readiness")
        if watched.ready:
            status, message = "READY", "Running"
        else:
            status = "PENDING"
            message = f"Readiness probe is failing at path: {probe[1]}, port: {probe[0]}" if probe else PENDING
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
        status, message = "PENDING", PENDING
    networks = (guard.attrs["NetworkSettings"].get("Networks") if guard else None) or {}
    image = container.attrs["Config"]["Image"]
    digests = []
    with contextlib.suppress(docker.errors.NotFound):  # an image deleted meanwhile
        digests = (container.image.attrs.get("RepoDigests") or []) if container.image else []
    return ContainerState(
        name=container.labels.get(NAME, container.name),
        status=status,
        message=message,
        image=image,
        exit_code=exit_code,
        digest=digests[0].split("@")[-1] if digests else None,
        started=parse_time(state.get("StartedAt")),
        restarts=container.attrs.get("RestartCount", 0) + watched.restarts,
        last_restart=watched.restarted_at,
        urls=urls,
        ip=next((n.get("IPAddress") for n in networks.values() if n.get("IPAddress")), None),
    )


def parse_time(text: str | None) -> datetime | None:
    return None if not text or text.startswith("0001-") else parse_timestamp(text)


def archive(files: dict[str, tuple[bytes, int]], user: tuple[int, int]) -> bytes:
    """A tar of the files (path -> content and mode) at their paths, owned by `user` (uid, gid)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, (data, mode) in files.items():
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode = len(data), mode
            info.uid, info.gid = user
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def folders(owners: dict[str, tuple[int, int]], open_to_all: set[str]) -> bytes:
    """A tar of folders (path -> uid and gid): put on a mount point, it gives the volume its owner. Those in
    `open_to_all` (a stage's folder on the host) stay writable by everyone, so that the host's user can still
    remove what the container writes there."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, (uid, gid) in owners.items():
            info = tarfile.TarInfo(path.strip("/"))
            info.type, info.uid, info.gid = tarfile.DIRTYPE, uid, gid
            info.mode = 0o777 if path in open_to_all else 0o755
            tar.addfile(info)
    return buffer.getvalue()


def owner(container: DockerContainer) -> tuple[int, int]:
    """The uid and gid the container runs as (its image's USER, by number, or by name in the image's
    /etc/passwd and /etc/group), so that a file of mode 0600 is its own; root when USER names none."""
    user = str((container.attrs.get("Config") or {}).get("User") or "")
    name, _, group = user.partition(":")
    uid = gid = 0
    if name.isdigit():
        uid = gid = int(name)
    elif name:
        uid, gid = ([*numbers(image_file(container, "/etc/passwd"), name), 0, 0])[:2]
    if group.isdigit():
        gid = int(group)
    elif group:
        gid = ([*numbers(image_file(container, "/etc/group"), group), gid])[0]
    return uid, gid


def image_file(container: DockerContainer, path: str) -> str:
    """A text file of the container's image, read before it starts; '' when there is none."""
    try:
        stream, _ = container.get_archive(path)
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.next()
            data = tar.extractfile(member) if member else None
            return data.read().decode(errors="replace") if data else ""
    except (docker.errors.DockerException, tarfile.TarError):
        return ""


def numbers(text: str, name: str) -> list[int]:
    """The ids on `name`'s line of an /etc/passwd (uid, gid) or /etc/group (gid)."""
    for line in text.splitlines():
        fields = line.split(":")
        if fields[0] == name and len(fields) > 2:
            return [int(field) for field in fields[2:4] if field.isdigit()]
    return []
