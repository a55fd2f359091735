"""Compute pools and image repositories: Snowflake's rules for them, and the registry that holds the images."""

from dataclasses import astuple
from typing import Any

from spcs_local.emulator.catalog.objects import (
    INSTANCE_FAMILIES,
    POOL_DEFAULTS,
    REGISTRY_COMPONENT,
    ComputePool,
    Image,
    ImageRepository,
    ImageStore,
    ObjectName,
    ServiceView,
    already_dropped,
    flag,
    now,
    positive,
    unset,
)
from spcs_local.emulator.results import already_exists, does_not_exist, invalid


class PoolsAndRepositories:
    """Part of the Catalog: its compute pools and image repositories."""

    def create_compute_pool(
        self, name: str, options: dict[str, Any], owner: str, if_not_exists: bool, or_replace: bool
    ) -> str:
        for required in ("MIN_NODES", "MAX_NODES", "INSTANCE_FAMILY"):
            if required not in options:
                raise invalid(f"SQL compilation error:\nMissing option '{required}' for CREATE COMPUTE POOL.")
        pool = ComputePool(
            name,
            min_nodes=positive(options, "MIN_NODES"),
            max_nodes=positive(options, "MAX_NODES"),
            instance_family=str(options["INSTANCE_FAMILY"]).upper(),
            auto_resume=flag(options, "AUTO_RESUME", True),
            auto_suspend_secs=positive(options, "AUTO_SUSPEND_SECS", 3600, allow_zero=True),
            comment=options.get("COMMENT"),
            owner=owner,
            suspended=flag(options, "INITIALLY_SUSPENDED", False),
        )
        if pool.max_nodes < pool.min_nodes:
            raise invalid("SQL compilation error:\nMAX_NODES must be greater than or equal to MIN_NODES.")
        if pool.instance_family not in INSTANCE_FAMILIES:
            raise invalid(
                f"SQL compilation error:\nInvalid value '{pool.instance_family}' for INSTANCE_FAMILY: one of "
                f"{', '.join(INSTANCE_FAMILIES)}."
            )
        with self.lock:
            if name in self.compute_pools:
                if if_not_exists:
                    return f"{name} already exists, statement succeeded."
                if not or_replace:
                    raise already_exists(name)
                self.drop_compute_pool(name, if_exists=True)
            self.compute_pools[name] = pool
            self.save()
        return f"Compute pool {name} successfully created."

    def compute_pool(self, name: str) -> ComputePool:
        if name not in self.compute_pools:
            raise does_not_exist("Compute pool", name)
        return self.compute_pools[name]

    def compute_pool_state(self, pool: ComputePool) -> str:
        if pool.suspended:
            return "SUSPENDED"
        running = any(view.status in ("PENDING", "RUNNING") for view in self.services_in_pool(pool.name))
        return "ACTIVE" if running else "IDLE"

    def services_in_pool(self, pool: str) -> list[ServiceView]:
        return [self.view(service) for service in list(self.services.values()) if service.compute_pool == pool]

    def alter_compute_pool(self, name: str, action: str, options: dict[str, Any], if_exists: bool) -> str:
        with self.lock:
            if if_exists and name not in self.compute_pools:
                return "Statement executed successfully."
            pool = self.compute_pool(name)
            if action == "STOP ALL":  # drops every service and job in the pool, as in SPCS
                for service in [s for s in self.services.values() if s.compute_pool == name]:
                    self.drop_service(service.object_name, if_exists=True)
            elif action == "SUSPEND":
                pool.suspended = True
                for service in [s for s in self.services.values() if s.compute_pool == name and not s.is_job]:
                    self.suspend_service(service)
            elif action == "RESUME":
                pool.suspended, pool.resumed_on = False, now()
                for service in [s for s in self.services.values() if s.compute_pool == name and s.suspended]:
                    if service.auto_resume:
                        self.resume_service(service)
            elif action == "UNSET":
                unset(pool, options, POOL_DEFAULTS, "COMPUTE POOL")
            else:  # SET
                for option, attribute in (("MIN_NODES", "min_nodes"), ("MAX_NODES", "max_nodes")):
                    if option in options:
                        setattr(pool, attribute, positive(options, option))
                if "AUTO_RESUME" in options:
                    pool.auto_resume = flag(options, "AUTO_RESUME", True)
                if "AUTO_SUSPEND_SECS" in options:
                    pool.auto_suspend_secs = positive(options, "AUTO_SUSPEND_SECS", allow_zero=True)
                if "COMMENT" in options:
                    pool.comment = options["COMMENT"]
            pool.updated_on = now()
            self.save()
        return "Statement executed successfully."

    def drop_compute_pool(self, name: str, if_exists: bool) -> str:
        with self.lock:
            if name not in self.compute_pools:
                return already_dropped("Compute pool", name, if_exists)
            in_use = sorted(s.name for s in self.services.values() if s.compute_pool == name)
            if in_use:
                raise invalid(
                    f"Cannot drop compute pool {name}: it still runs {', '.join(in_use)}. "
                    f"Stop them first: ALTER COMPUTE POOL {name} STOP ALL."
                )
            del self.compute_pools[name]
            self.save()
        return f"{name} successfully dropped."

    # --- image repositories -------------------------------------------------------------------

    def repository_url(self, repository: ImageRepository) -> str:
        """host:port/db/schema/repository, lowercase, as `docker push` names it (no scheme)."""
        path = f"{repository.database}/{repository.schema}/{repository.name}".lower()
        return f"{self.registry().address}/{path}" if self.image_store else path

    def create_image_repository(
        self, name: ObjectName, owner: str, comment: str | None, if_not_exists: bool, or_replace: bool
    ) -> str:
        # The repository's URL path is its database, schema and name in lowercase: each must be one.
        bad = [part for part in astuple(name) if not REGISTRY_COMPONENT.fullmatch(part.lower())]
        if bad:
            raise invalid(
                f"SQL compilation error:\nThe local SPCS names images /<database>/<schema>/<repository>/ in lowercase: "
                f"{bad[0]!r} can't be part of that path (letters, digits, and '.', '_' or '-' between them)."
            )
        with self.lock:
            if str(name) in self.repositories:
                if if_not_exists:
                    return f"{name.name} already exists, statement succeeded."
                if not or_replace:
                    raise already_exists(name.name)
            self.repositories[str(name)] = ImageRepository(name.database, name.schema, name.name, owner, comment)
            self.save()
        return f"Image Repository {name.name} successfully created."

    def repository(self, name: ObjectName) -> ImageRepository:
        if str(name) not in self.repositories:
            raise does_not_exist("Image repository", name.name)
        return self.repositories[str(name)]

    def drop_image_repository(self, name: ObjectName, if_exists: bool) -> str:
        with self.lock:
            if str(name) not in self.repositories:
                return already_dropped("Image repository", name.name, if_exists)
            repository = self.repositories.pop(str(name))
            self.save()
        if self.image_store:  # dropping a repository drops its images, as in Snowflake
            self.image_store.delete(self.repository_path(repository))
        return f"{name.name} successfully dropped."

    def images(self, name: ObjectName) -> list[Image]:
        return self.registry().images(self.repository_path(self.repository(name)))

    @staticmethod
    def repository_path(repository: ImageRepository) -> str:
        return f"{repository.database}/{repository.schema}/{repository.name}".lower()

    def registry(self) -> ImageStore:
        if self.image_store is None:
            raise invalid("The local SPCS runs without an image registry here: start it with `make local-up`.")
        return self.image_store
