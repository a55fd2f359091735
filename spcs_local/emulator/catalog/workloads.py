"""A service's spec as a workload for the backend: checked by the linter, its images resolved in the registry,
its secrets, session token, limits, volumes and egress as SPCS gives them."""

import json
import os
from pathlib import Path
from typing import Any

from spcs_local.emulator.catalog.objects import (
    INSTANCE_FAMILIES,
    Capacity,
    ObjectName,
    Service,
    memory_bytes,
    nano_cpus,
    spec_env,
)
from spcs_local.emulator.results import does_not_exist, invalid, unsupported
from spcs_local.emulator.secret_store import secret_name
from spcs_local.emulator.workload import Backend, Container, File, Probe, Workload
from spcs_local.lint import ERROR, lint

SESSION_FOLDER = "/snowflake/session"  # where SPCS mounts the token, unless sessionTokenConfig.path says otherwise
TRUST_BUNDLE = "/etc/ssl/certs/local-spcs-ca-bundle.pem"  # the host's roots and the local CA, read-only


class Workloads:
    """Part of the Catalog: specs turned into workloads."""

    def workload(self, service: Service, token: str = "", index: int = 0) -> Workload:
        """Instance `index` of the spec, checked by the spec linter and resolved against the repositories and the
        registry; each container gets the service's OAuth `token` as its sessionTokenConfig says."""
        errors = [problem for problem in lint(service.spec) if problem.level == ERROR]
        if errors:
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise invalid(f"Invalid spec: {errors[0]}{more}.")
        spec = service.document["spec"]
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        settings = self.settings
        injected = {
            "SNOWFLAKE_ACCOUNT": settings.account,
            "SNOWFLAKE_HOST": settings.snowflake_host,
            "SNOWFLAKE_PORT": str(settings.snowflake_port),
            "SNOWFLAKE_DATABASE": service.database,
            "SNOWFLAKE_SCHEMA": service.schema,
        }
        if service.is_job and service.replicas > 1:  # each replica's place in a job of several, as SPCS tells it
            injected |= {"SNOWFLAKE_JOB_INDEX": str(index), "SNOWFLAKE_JOBS_COUNT": str(service.replicas)}
        if settings.trust:  # the standard trust settings: OpenSSL's and Python's, requests', Node.js's
            injected |= {name: TRUST_BUNDLE for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS")}
        containers, ports = [], {e["port"] for e in spec.get("endpoints") or [] if "port" in e}
        node = self.node_capacity(service)
        for entry in spec["containers"]:
            readiness, liveness = probe_of(entry, "readinessProbe"), probe_of(entry, "livenessProbe")
            ports |= {probe.port for probe in (readiness, liveness) if probe}
            limits = (entry.get("resources") or {}).get("limits") or {}
            memory = node.memory_within("memory limit", memory_bytes(limits["memory"])) if "memory" in limits else None
            cpus = node.cpus_within(nano_cpus(limits["cpu"])) if "cpu" in limits else None
            tmpfs, shared, block, binds, owners = {}, {}, {}, {}, {}
            for mount in entry.get("volumeMounts") or []:
                volume, path = volumes[mount["name"]], mount["mountPath"]
                source = str(volume.get("source"))
                if "uid" in volume or "gid" in volume:
                    owners[path] = (volume.get("uid", 0), volume.get("gid", 0))
                if source == "memory":
                    size = memory_bytes(volume.get("size", "1Gi"))
                    tmpfs[path] = node.memory_within(f"memory volume {volume['name']}", size)
                elif source == "local":
                    shared[volume["name"]] = path
                elif source == "block":
                    if (volume.get("blockConfig") or {}).get("initialContents"):
                        raise unsupported("block volumes made from a snapshot")
                    block[f"{service.key}:{volume['name']}:{index}"] = path
                else:  # source: stage with stageConfig, or the deprecated "@stage"
                    stage = (volume.get("stageConfig") or {}).get("name", "") if source == "stage" else source
                    binds[str(self.stage_volume(service, str(stage)))] = path
            secret_env, secret_files = self.container_secrets(service, entry.get("secrets") or [])
            session_env, session_files = self.session_files(service, entry, token)
            containers.append(
                Container(
                    name=entry["name"],
                    image=self.image_reference(entry["image"]),
                    env={**injected, **spec_env(entry.get("env")), **secret_env, **session_env},
                    command=entry.get("command"),
                    args=entry.get("args"),
                    readiness=readiness,
                    liveness=liveness,
                    memory=memory or node.memory,
                    # Docker grants no more CPUs than the machine has.
                    nano_cpus=min(cpus or node.nano_cpus or 0, (os.cpu_count() or 1) * 10**9) or None,
                    tmpfs=tmpfs,
                    volumes=shared,
                    block=block,
                    binds=binds,
                    owners=owners,
                    files=secret_files | session_files,
                )
            )
        names = (service.dns_name.split(".")[0], service.dns_name)
        return Workload(
            key=service.instance_key(index),
            network=f"{service.database}-{service.schema}".lower(),
            hostnames=names,
            job=service.is_job,
            containers=tuple(containers),
            ports=tuple(sorted(ports)),
            mounts={TRUST_BUNDLE: str(settings.trust)} if settings.trust else {},
            extra_hosts=settings.extra_hosts,
            front=(settings.snowflake_port, settings.front_port),
            egress=tuple(self.access.egress(service.external_access_integrations)),
        )

    def stage_volume(self, service: Service, stage: str) -> Path:
        """The folder on the host that a stage volume mounts: `@stage` or `@stage/folder`, the stage's name
        qualified as in SQL (unquoted parts in uppercase), in the service's schema unless it says otherwise."""
        name, _, folder = stage.removeprefix("@").partition("/")
        parts = [part[1:-1] if part.startswith('"') else part.upper() for part in name.split(".")]
        if not 1 <= len(parts) <= 3 or not all(parts):
            raise invalid(f"Invalid spec: '{stage}' is not a stage.")
        root = self.stage_folder(ObjectName(*([service.database, service.schema][: 3 - len(parts)] + parts)))
        target = (root / folder.strip("/")).resolve()
        if not target.is_relative_to(root):
            raise invalid(f"Invalid spec: '{stage}' leaves its stage.")
        target.mkdir(parents=True, exist_ok=True)
        return target

    def session_files(self, service: Service, entry: dict[str, Any], token: str) -> tuple[dict[str, str], dict]:
        """The session token as mountSessionToken and sessionTokenConfig say, with the generated connections.toml
        (and SNOWFLAKE_HOME) under mountConnectionConfig; both with the token's mode."""
        if entry.get("mountSessionToken") is False:
            return {}, {}
        config = entry.get("sessionTokenConfig") or {}
        folder, mode = config.get("path", SESSION_FOLDER), int(config.get("permission", "0644"), 8)
        files = {f"{folder}/token": File(token, mode)}
        if not config.get("mountConnectionConfig"):
            return {}, files
        settings = self.settings
        default = {
            "account": settings.account,
            "host": settings.snowflake_host,
            "port": settings.snowflake_port,
            "protocol": "https",
            "authenticator": "oauth",
            "token_file_path": f"{folder}/token",
            "database": service.database,
            "schema": service.schema,
        } | ({"warehouse": service.query_warehouse} if service.query_warehouse else {})
        lines = ["[default]"] + [f"{key} = {json.dumps(value)}" for key, value in default.items()]  # TOML's strings
        files[f"{folder}/connections.toml"] = File("\n".join(lines) + "\n", mode)
        return {"SNOWFLAKE_HOME": folder}, files

    def container_secrets(self, service: Service, references: list[dict]) -> tuple[dict[str, str], dict[str, File]]:
        """A container's `secrets`: the environment variables (envVarName with secretKeyRef) and the files
        (directoryPath, a file a key) they give it. A secret that doesn't exist is Snowflake's error."""
        env, files = {}, {}
        for reference in references:
            secret = reference["snowflakeSecret"]
            text = secret if isinstance(secret, str) else secret.get("objectName") or secret.get("objectReference")
            name = ObjectName(*secret_name(str(text), service.database, service.schema))
            if "envVarName" in reference:
                env[reference["envVarName"]] = self.secrets.value(name, reference["secretKeyRef"])
            else:
                folder = reference["directoryPath"].rstrip("/")
                files |= {f"{folder}/{key}": File(value) for key, value in self.secrets.files(name).items()}
        return env, files

    def node_capacity(self, service: Service) -> "Capacity":
        """What a node of the service's compute pool holds: the default limits of its containers, and their cap."""
        pool = self.compute_pools.get(service.compute_pool)
        if pool is None or pool.instance_family not in INSTANCE_FAMILIES:
            return Capacity(None, None, "")
        cpus, gib = INSTANCE_FAMILIES[pool.instance_family]
        return Capacity(gib * 2**30, cpus * 10**9, pool.instance_family)

    def image_reference(self, image: str) -> str:
        """`/db/schema/repository/image:tag` as a reference to the local registry, once it is there."""
        registry = self.registry()
        path = image.removeprefix(registry.address).strip("/")
        parts = path.split("/")
        if not image.startswith(("/", registry.address)) or len(parts) < 4:
            raise invalid(f"Invalid spec: image '{image}' must be /<database>/<schema>/<repository>/<image>:<tag>.")
        repository = ObjectName(*(part.upper() for part in parts[:3]))
        if str(repository) not in self.repositories:
            raise does_not_exist("Image repository", str(repository))
        name, _, tag = "/".join(parts[3:]).partition(":")
        repository_path = "/".join(parts[:3]).lower()
        if not registry.exists(f"{repository_path}/{name}", tag or "latest"):
            raise invalid(
                f"Invalid spec: image '{image}' was not found in image repository {repository}: "
                f"push it first (docker push {registry.address}/{repository_path}/{name}:{tag or 'latest'})."
            )
        return f"{registry.address}/{repository_path}/{name}:{tag or 'latest'}"

    def containers_backend(self) -> Backend:
        if self.backend is None:
            raise invalid("No Docker engine is reachable, so the local SPCS can't run containers: start one.")
        return self.backend


def probe_of(entry: dict[str, Any], kind: str) -> Probe | None:
    """A container's readinessProbe or livenessProbe, with SPCS's defaults for what it leaves out."""
    probe = entry.get(kind)
    if not probe:
        return None
    return Probe(probe["port"], probe["path"], probe.get("periodSeconds", 5), probe.get("failureThreshold", 3))
