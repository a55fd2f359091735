"""Remote builds (`snow spcs service remote-build`): a build context becomes an image in an image repository,
built by a job of its own whose container `main` logs the build, as SPCS's image builder does."""

import json
import threading
from typing import Any

from spcs_local.emulator.catalog.objects import ObjectName, Outcome, Service, encode, now
from spcs_local.emulator.catalog.services import kept_log
from spcs_local.emulator.results import SnowflakeError, already_exists, does_not_exist, invalid
from spcs_local.emulator.workload import BackendError, ContainerState, stamped

BUILDER = "main"  # the builder job's one container, whose logs `snow` streams
JOB_PREFIX = "SPCS_IMAGE_BUILDER_JOB_"


class Builds:
    """Part of the Catalog: image builds, each a job."""

    def remote_build(
        self, job: ObjectName, repository: ObjectName, image: str, tag: str, files: dict[str, bytes], pool: str,
        owner: str,
    ) -> Service:  # fmt: skip
        """Start building `files` (a build context with its Dockerfile) into repository/image:tag; the job's
        status and logs follow the build."""
        if "Dockerfile" not in files:
            raise invalid("The build context has no Dockerfile at its top.")
        if str(repository) not in self.repositories:
            raise does_not_exist("Image repository", str(repository))
        if pool:
            self.compute_pool(pool)
        path = "/".join(part.lower() for part in (repository.database, repository.schema, repository.name))
        spec = {"spec": {"containers": [{"name": BUILDER, "image": f"/{path}/{image}:{tag}"}]}}
        with self.lock:
            if str(job) in self.services:
                raise already_exists(job.name)
            build = Service(job.database, job.schema, job.name, compute_pool=pool, spec=json.dumps(spec), owner=owner,
                            is_job=True, is_async_job=True)  # fmt: skip
            self.services[build.key] = build
            self.save()
        reference = f"{self.registry().address}/{path}/{image}:{tag}"
        threading.Thread(target=self.run_build, args=(build, files, reference), daemon=True).start()
        return build

    def run_build(self, build: Service, files: dict[str, bytes], reference: str) -> None:
        """Build, the job's log growing line by line as the build goes, so that `snow` streams it."""
        logs_dir = self.job_logs_dir(build)
        logs_dir.mkdir(parents=True, exist_ok=True)
        with (logs_dir / kept_log(0, BUILDER)).open("w") as kept:

            def log(line: str) -> None:
                kept.write(line + "\n")
                kept.flush()

            try:
                built = self.containers_backend().build(files, reference, log)
            except (BackendError, SnowflakeError) as error:
                built = False
                log(stamped(str(error)))
        if built:
            state = ContainerState(BUILDER, "DONE", "Completed successfully", reference, exit_code=0)
        else:
            state = ContainerState(BUILDER, "FAILED", "The image build failed: see its logs.", reference, exit_code=1)
        with self.lock:
            build.outcome, build.updated_on = Outcome(state.status, [encode(state)]), now()
            if build.key in self.services:
                self.save()

    def build_status(self, job: ObjectName) -> dict[str, Any] | None:
        """A build job as the remote-build API shows it; None when there is none of that name."""
        build = self.services.get(str(job))
        if build is None or not build.name.startswith(JOB_PREFIX):
            return None
        status = build.outcome.status if build.outcome else "RUNNING"
        return {
            "job_name": build.key,
            "job_status": status,
            "creation_time": build.created_on.isoformat(),
            "end_time": build.updated_on.isoformat() if build.outcome else None,
        }

    def builds(self) -> list[dict[str, Any]]:
        """Every build job, the latest first."""
        found = [s.object_name for s in self.services.values() if s.is_job and s.name.startswith(JOB_PREFIX)]
        statuses = [status for status in map(self.build_status, found) if status]
        return sorted(statuses, key=lambda status: status["creation_time"], reverse=True)
