"""The remote-build REST API that `snow spcs service remote-build` calls, as calls on the catalog: submit a
build of a context on a stage, look up a build job, list them."""

import re
import uuid
from typing import Any

from spcs_local.emulator.catalog import Catalog
from spcs_local.emulator.catalog.builds import JOB_PREFIX
from spcs_local.emulator.catalog.objects import REGISTRY_COMPONENT, ObjectName
from spcs_local.emulator.results import SnowflakeError, invalid
from spcs_local.emulator.statements.parser import Context, Parser, Storage, resolve

TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")  # as registries take a tag


class BuildRequests:
    """Part of Statements (its `catalog` and `stages`): the remote-build API's requests."""

    catalog: Catalog
    stages: Storage

    def submit_build(self, context: Context, body: dict[str, Any]) -> dict[str, Any]:
        """POST /api/v2/remote-build/execute: `build_source` (@stage/folder, holding the context), `location`
        (the image repository), `name` and `image_tag` of the image, `compute_pool`; answers the job's name."""
        if body.get("build_type", "image") != "image":
            raise invalid("The local SPCS builds images only: app builds need an artifact repository.")
        source, location = body.get("build_source"), body.get("location")
        if not isinstance(source, str) or not source.startswith("@") or "/" not in source:
            raise invalid("build_source must be a folder of a stage: @<stage>/<folder>.")
        if not isinstance(location, str) or not location:
            raise invalid("Name the image repository with --location: the local SPCS has no account default.")
        stage_text, _, folder = source[1:].partition("/")
        stage = resolve(Parser(stage_text).name_parts(), context)
        image = str(body.get("name") or f"image_{uuid.uuid4().hex[:8]}").lower()
        tag = str(body.get("image_tag") or "latest")
        if not REGISTRY_COMPONENT.fullmatch(image) or not TAG.fullmatch(tag):
            raise invalid(f"'{image}:{tag}' can't be an image's name and tag in a registry.")
        pool = str(body.get("compute_pool") or "").upper()
        files = self.stages.read_folder(stage, folder)
        job = ObjectName(context.database or "", context.schema or "", f"{JOB_PREFIX}{uuid.uuid4().hex[:12].upper()}")
        if not job.database or not job.schema:
            raise invalid("The session has no current database and schema for the build job.")
        repository = resolve(Parser(location).name_parts(), context)
        build = self.catalog.remote_build(job, repository, image, tag, files, pool, context.role)
        return {"job_name": build.key}

    def build_job(self, context: Context, name: str) -> dict[str, Any] | None:
        """GET /api/v2/remote-build/jobs/<name>: the job's status; None when there is no such job."""
        try:
            return self.catalog.build_status(resolve(Parser(name).name_parts(), context))
        except SnowflakeError:  # not a name at all
            return None

    def build_jobs(self) -> dict[str, Any]:
        """GET /api/v2/remote-build/jobs: every build job, the latest first, on one page."""
        return {"jobs": self.catalog.builds()}
