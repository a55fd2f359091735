"""SHOW and DESCRIBE: which to run, and the result sets of pools, repositories, images, services, their
containers, instances and endpoints, and service functions, with the reference's columns."""

import json
from typing import Any, ClassVar

import yaml

from spcs_local.emulator.catalog import Catalog, ObjectName, Service, ServiceView
from spcs_local.emulator.results import Column, Result, SnowflakeError, does_not_exist
from spcs_local.emulator.statements.parser import (
    Context,
    Parser,
    Run,
    in_scope,
    matches,
    resolve,
)  # fmt: skip


class ListingStatements:
    """Part of Statements (its `catalog`): SHOW and DESCRIBE."""

    catalog: Catalog

    def parse_show(self, parser: Parser) -> Run | None:
        parser.expect("SHOW")
        if parser.accept("COMPUTE", "POOLS"):
            pattern, _ = self.like_and_scope(parser)
            return lambda context: self.show_compute_pools(pattern)
        if parser.accept("IMAGE", "REPOSITORIES"):
            pattern, scope = self.like_and_scope(parser)
            return lambda context: self.show_repositories(pattern, scope, context)
        if parser.accept("IMAGES"):
            pattern = self.like(parser)
            parser.expect("IN", "IMAGE", "REPOSITORY")
            parts = parser.name_parts()
            parser.end()
            return lambda context: self.show_images(resolve(parts, context), pattern)
        jobs_only = parser.accept("JOB")
        if parser.accept("SERVICES"):
            exclude_jobs = parser.accept("EXCLUDE", "JOBS")
            pattern, scope = self.like_and_scope(parser)
            return lambda context: self.show_services(pattern, scope, context, jobs_only, exclude_jobs)
        if jobs_only:
            raise parser.error()
        if parser.accept("SERVICE", "CONTAINERS", "IN", "SERVICE"):
            parts = parser.name_parts()
            parser.end()
            return lambda context: self.show_containers(resolve(parts, context))
        if parser.accept("SERVICE", "INSTANCES", "IN", "SERVICE"):
            parts = parser.name_parts()
            parser.end()
            return lambda context: self.show_instances(resolve(parts, context))
        if parser.accept("ENDPOINTS", "IN", "SERVICE"):
            parts = parser.name_parts()
            parser.end()
            return lambda context: self.show_endpoints(resolve(parts, context))
        if parser.accept("ROLES", "IN", "SERVICE"):
            parts = parser.name_parts()
            parser.end()
            return lambda context: self.show_service_roles(resolve(parts, context))
        for direction in ("TO", "OF"):
            if parser.accept("GRANTS", direction, "SERVICE", "ROLE"):
                parts = parser.name_parts()
                parser.expect_punct("!")
                role = parser.next().value
                parser.end()
                show = self.show_grants_to_service_role if direction == "TO" else self.show_grants_of_service_role
                return lambda context: show(resolve(parts, context), role)
        if parser.accept("PARAMETERS"):
            return self.parse_show_parameters(parser)
        if parser.accept("USER", "FUNCTIONS"):
            pattern, scope = self.like_and_scope(parser)
            return lambda context: self.show_functions(pattern, scope, context)
        if parser.accept("SECRETS"):
            pattern, scope = self.like_and_scope(parser)
            return lambda context: self.show_secrets(pattern, scope, context)
        if parser.accept("NETWORK", "RULES"):
            pattern, scope = self.like_and_scope(parser)
            return lambda context: self.show_rules(pattern, scope, context)
        if parser.accept("EXTERNAL", "ACCESS", "INTEGRATIONS") or parser.accept("INTEGRATIONS"):
            pattern = self.like(parser)
            parser.end()
            return lambda context: self.show_integrations(pattern)
        return None

    def parse_describe(self, parser: Parser) -> Run | None:
        parser.next()  # DESCRIBE or DESC
        if parser.accept("SERVICE"):
            parts = parser.name_parts()
            parser.end()
            return lambda context: self.describe_service(resolve(parts, context))
        if parser.accept("COMPUTE", "POOL"):
            pool = ".".join(parser.name_parts())
            parser.end()
            return lambda context: self.show_compute_pools(None, only=pool)
        if parser.accept("FUNCTION"):
            parts = parser.name_parts()
            types = parser.listed(parser.data_type)
            parser.end()
            return lambda context: self.describe_function(resolve(parts, context), types)
        if parser.accept("SECRET"):
            parts = parser.name_parts()
            parser.end()
            return lambda context: self.describe_secret(resolve(parts, context))
        if parser.accept("NETWORK", "RULE"):
            parts = parser.name_parts()
            parser.end()
            return lambda context: self.describe_rule(resolve(parts, context))
        if parser.accept("EXTERNAL", "ACCESS", "INTEGRATION") or parser.accept("INTEGRATION"):
            name = ".".join(parser.name_parts())
            parser.end()
            return lambda context: self.describe_integration(name)
        return None

    @staticmethod
    def like(parser: Parser) -> str | None:
        return parser.string() if parser.accept("LIKE") else None

    def like_and_scope(self, parser: Parser) -> tuple[str | None, tuple[str, list[str]] | None]:
        """[LIKE 'pattern'] [IN ACCOUNT | DATABASE [d] | SCHEMA [s] | s | COMPUTE POOL p] [STARTS WITH ..] [LIMIT n]."""
        pattern, scope = self.like(parser), None
        if parser.accept("IN"):
            if parser.accept("ACCOUNT"):
                scope = ("ACCOUNT", [])
            elif parser.accept("COMPUTE", "POOL"):
                scope = ("COMPUTE POOL", parser.name_parts())
            elif parser.at_words("DATABASE") or parser.at_words("SCHEMA"):
                kind = parser.next().value
                named = parser.peek().kind in ("word", "quoted") and parser.peek().value not in ("STARTS", "LIMIT")
                scope = (kind, parser.name_parts() if named else [])
            else:
                scope = ("SCHEMA", parser.name_parts())
        if parser.accept("STARTS", "WITH"):
            parser.string()
        if parser.accept("LIMIT"):
            parser.value()
        parser.end()
        return pattern, scope

    def show_compute_pools(self, pattern: str | None, only: str | None = None) -> Result:
        pools = [p for name, p in sorted(self.catalog.compute_pools.items()) if matches(pattern, name)]
        if only is not None:
            pools = [self.catalog.compute_pool(only)]
        columns = [
            Column("name"), Column("state"), Column("min_nodes", "fixed"), Column("max_nodes", "fixed"),
            Column("instance_family"), Column("num_services", "fixed"), Column("num_jobs", "fixed"),
            Column("auto_suspend_secs", "fixed"), Column("auto_resume", "boolean"), Column("active_nodes", "fixed"),
            Column("idle_nodes", "fixed"), Column("target_nodes", "fixed"), Column("created_on", "timestamp_ltz"),
            Column("resumed_on", "timestamp_ltz"), Column("updated_on", "timestamp_ltz"), Column("owner"),
            Column("comment"), Column("is_exclusive", "boolean"), Column("application"),
        ]  # fmt: skip
        rows = []
        for pool in pools:
            views = self.catalog.services_in_pool(pool.name)
            running = [v for v in views if v.status in ("PENDING", "RUNNING")]
            state = self.catalog.compute_pool_state(pool)
            active = 0 if pool.suspended else pool.min_nodes
            rows.append([
                pool.name, state, pool.min_nodes, pool.max_nodes, pool.instance_family,
                sum(not v.service.is_job for v in running), sum(v.service.is_job for v in running),
                pool.auto_suspend_secs, pool.auto_resume, active if running else 0, 0 if running else active,
                active, pool.created_on, pool.resumed_on, pool.updated_on, pool.owner, pool.comment, False, None,
            ])  # fmt: skip
        return Result(columns, rows)

    def show_repositories(self, pattern: str | None, scope: Any, context: Context) -> Result:
        columns = [
            Column("created_on", "timestamp_ltz"), Column("name"), Column("database_name"), Column("schema_name"),
            Column("repository_url"), Column("owner"), Column("owner_role_type"), Column("comment"),
        ]  # fmt: skip
        rows = [
            [r.created_on, r.name, r.database, r.schema, self.catalog.repository_url(r), r.owner, "ROLE", r.comment]
            for r in sorted(self.catalog.repositories.values(), key=lambda r: (r.database, r.schema, r.name))
            if matches(pattern, r.name) and in_scope(scope, context, r.database, r.schema)
        ]
        return Result(columns, rows)

    def show_images(self, repository: ObjectName, pattern: str | None) -> Result:
        columns = [Column("created_on", "timestamp_ltz"), Column("image_name"), Column("tags"), Column("digest"),
                   Column("image_path")]  # fmt: skip
        path = f"{repository.database}/{repository.schema}/{repository.name}".lower()
        rows = [
            [image.created_on, image.name, image.tag, image.digest, f"{path}/{image.name}:{image.tag}"]
            for image in self.catalog.images(repository)
            if matches(pattern, image.name)
        ]
        return Result(columns, rows)

    SERVICE_COLUMNS: ClassVar[list[Column]] = [
        Column("name"), Column("status"), Column("database_name"), Column("schema_name"), Column("owner"),
        Column("compute_pool"), Column("dns_name"), Column("current_instances", "fixed"),
        Column("target_instances", "fixed"), Column("min_ready_instances", "fixed"), Column("min_instances", "fixed"),
        Column("max_instances", "fixed"), Column("auto_resume", "boolean"), Column("external_access_integrations"),
        Column("created_on", "timestamp_ltz"), Column("updated_on", "timestamp_ltz"),
        Column("resumed_on", "timestamp_ltz"), Column("suspended_on", "timestamp_ltz"),
        Column("auto_suspend_secs", "fixed"), Column("comment"), Column("owner_role_type"), Column("query_warehouse"),
        Column("is_job", "boolean"), Column("is_async_job", "boolean"), Column("spec_digest"),
        Column("is_upgrading", "boolean"), Column("managing_object_domain"), Column("managing_object_name"),
    ]  # fmt: skip

    def service_row(self, view: ServiceView) -> list[Any]:
        s = view.service
        running = len({c.instance for c in view.containers}) if view.status in ("RUNNING", "PENDING") else 0
        integrations = json.dumps(s.external_access_integrations) if s.external_access_integrations else None
        return [
            s.name, view.status, s.database, s.schema, s.owner, s.compute_pool, s.dns_name, running,
            0 if s.suspended or s.outcome else s.instances, s.min_ready_instances or s.min_instances, s.min_instances,
            s.max_instances, s.auto_resume,
            integrations, s.created_on, s.updated_on, s.resumed_on, s.suspended_on, s.auto_suspend_secs, s.comment,
            "ROLE", s.query_warehouse, s.is_job, s.is_async_job, s.spec_digest, False, None, None,
        ]  # fmt: skip

    def show_services(
        self, pattern: str | None, scope: Any, context: Context, jobs_only: bool, exclude_jobs: bool
    ) -> Result:
        rows = []
        for view in sorted(self.catalog.views(), key=lambda v: v.service.key):
            s = view.service
            if (jobs_only and not s.is_job) or (exclude_jobs and s.is_job) or not matches(pattern, s.name):
                continue
            if scope and scope[0] == "COMPUTE POOL":
                if s.compute_pool != ".".join(scope[1]):
                    continue
            elif not in_scope(scope, context, s.database, s.schema):
                continue
            rows.append(self.service_row(view))
        return Result(self.SERVICE_COLUMNS, rows)

    def describe_service(self, name: ObjectName) -> Result:
        view = self.catalog.view(self.catalog.service(name))
        row = self.service_row(view)
        columns = [*self.SERVICE_COLUMNS[:6], Column("spec"), *self.SERVICE_COLUMNS[6:]]
        return Result(columns, [[*row[:6], spec_yaml(view.service.spec), *row[6:]]])

    def show_containers(self, name: ObjectName) -> Result:
        view = self.catalog.view(self.catalog.service(name))
        columns = [
            Column("database_name"), Column("schema_name"), Column("service_name"), Column("service_status"),
            Column("instance_id"), Column("instance_status"), Column("container_name"), Column("status"),
            Column("message"), Column("image_name"), Column("image_digest"), Column("restart_count", "fixed"),
            Column("start_time"), Column("last_exit_code", "fixed"), Column("last_restart_time", "timestamp_ltz"),
        ]  # fmt: skip
        s, statuses = view.service, instance_statuses(view)
        rows = [
            [
                s.database,
                s.schema,
                s.name,
                view.status,
                str(c.instance),
                statuses[c.instance],
                c.name,
                c.status,
                c.message,
                c.image or None,
                c.digest,
                c.restarts,
                c.started and c.started.isoformat(),
                c.exit_code,
                c.last_restart,
            ]
            for c in view.containers
        ]
        return Result(columns, rows)

    def show_instances(self, name: ObjectName) -> Result:
        view = self.catalog.view(self.catalog.service(name))
        s = view.service
        columns = [
            Column("database_name"), Column("schema_name"), Column("service_name"), Column("service_status"),
            Column("instance_id"), Column("status"), Column("spec_digest"), Column("creation_time"),
            Column("start_time"), Column("ip_address"),
        ]  # fmt: skip
        rows = []
        for index, status in instance_statuses(view).items():
            containers = [c for c in view.containers if c.instance == index]
            started = min((c.started for c in containers if c.started), default=None)
            ip = next((c.ip for c in containers if c.ip), None)
            rows.append([s.database, s.schema, s.name, view.status, str(index), status, s.spec_digest,
                         s.created_on.isoformat(), started and started.isoformat(), ip])  # fmt: skip
        return Result(columns, rows)

    def show_endpoints(self, name: ObjectName) -> Result:
        view = self.catalog.view(self.catalog.service(name))
        columns = [Column("name"), Column("port", "fixed"), Column("port_range"), Column("protocol"),
                   Column("is_public", "boolean"), Column("ingress_url")]  # fmt: skip
        rows = []
        for endpoint in view.service.document["spec"].get("endpoints") or []:
            port, public = endpoint.get("port"), bool(endpoint.get("public", False))
            if endpoint["name"] in view.service.external:  # a service running elsewhere: where it answers
                url = view.service.external[endpoint["name"]].split("://")[-1]
                port, public = int(url.rsplit(":", 1)[1]), True
            elif not public:
                url = None
            elif endpoint["name"] in view.service.ingress:  # the local SPCS's ingress, which keeps its port
                url = f"127.0.0.1:{view.service.ingress[endpoint['name']]}"
            else:
                url = "Endpoints provisioning in progress... check back in a few minutes"
            rows.append([endpoint["name"], port, endpoint.get("portRange"), endpoint.get("protocol", "HTTP"), public,
                         url])  # fmt: skip
        return Result(columns, rows)

    def show_service_roles(self, name: ObjectName) -> Result:
        """The service's roles: ALL_ENDPOINTS_USAGE, which every service has, and its spec's serviceRoles."""
        service = self.catalog.service(name)
        columns = [Column("created_on", "timestamp_ltz"), Column("name"), Column("comment")]
        roles = ["ALL_ENDPOINTS_USAGE"] + [
            str(role["name"]).upper() for role in service.document.get("serviceRoles") or []
        ]
        return Result(columns, [[service.created_on, role, None] for role in roles])

    def service_role_endpoints(self, name: ObjectName, role: str) -> tuple[Service, list[str]]:
        """A service role's endpoints: every endpoint for ALL_ENDPOINTS_USAGE, the spec's list for its own."""
        service = self.catalog.service(name)
        endpoints = [str(e["name"]) for e in service.document["spec"].get("endpoints") or []]
        if role == "ALL_ENDPOINTS_USAGE":
            return service, endpoints
        for own in service.document.get("serviceRoles") or []:
            if str(own["name"]).upper() == role:
                return service, [str(endpoint) for endpoint in own.get("endpoints") or []]
        raise does_not_exist("Service role", f"{service.name}!{role}")

    def show_grants_to_service_role(self, name: ObjectName, role: str) -> Result:
        """USAGE on each of the role's endpoints, as SHOW GRANTS TO SERVICE ROLE lists them."""
        service, endpoints = self.service_role_endpoints(name, role)
        columns = [Column("created_on", "timestamp_ltz"), Column("privilege"), Column("granted_on"),
                   Column("name"), Column("granted_to"), Column("grantee_name"), Column("grant_option"),
                   Column("granted_by")]  # fmt: skip
        grantee = f"{service.name}!{role}"
        return Result(columns, [[service.created_on, "USAGE", "SERVICE_ENDPOINT", f"{service.key}!{endpoint}",
                                 "SERVICE_ROLE", grantee, "false", None] for endpoint in endpoints])  # fmt: skip

    def show_grants_of_service_role(self, name: ObjectName, role: str) -> Result:
        """Whom the service role is granted to: nobody the local SPCS keeps, since grants are no-ops here."""
        self.service_role_endpoints(name, role)
        columns = [Column("created_on", "timestamp_ltz"), Column("role"), Column("granted_to"),
                   Column("grantee_name"), Column("granted_by")]  # fmt: skip
        return Result(columns, [])

    def show_functions(self, pattern: str | None, scope: Any, context: Context) -> Result:
        columns = [
            Column("created_on", "timestamp_ltz"), Column("name"), Column("schema_name"),
            Column("is_builtin"), Column("is_aggregate"), Column("is_ansi"), Column("min_num_arguments", "fixed"),
            Column("max_num_arguments", "fixed"), Column("arguments"), Column("description"),
            Column("catalog_name"), Column("is_table_function"), Column("valid_for_clustering"),
            Column("is_secure"), Column("is_external_function"), Column("language"),
        ]  # fmt: skip
        rows = []
        for f in sorted(self.catalog.functions.values(), key=lambda f: (f.database, f.schema, f.name)):
            if matches(pattern, f.name) and in_scope(scope, context, f.database, f.schema):
                n = len(f.arguments)
                description = f.comment or "user-defined function"
                rows.append([f.created_on, f.name, f.schema, "N", "N", "N", n, n, f"{f.signature} RETURN {f.returns}",
                             description, f.database, "N", "N", "N", "Y", "EXTERNAL"])  # fmt: skip
        return Result(columns, rows)

    def describe_function(self, name: ObjectName, types: list[str]) -> Result:
        matching = [
            f for f in self.catalog.functions.values()
            if (f.database, f.schema, f.name) == (name.database, name.schema, name.name)
            and [t.split("(")[0] for _, t in f.arguments] == [t.split("(")[0] for t in types]
        ]  # fmt: skip
        if not matching:
            raise SnowflakeError(
                f"SQL compilation error:\nFunction '{name.name}({', '.join(types)})' does not exist or not authorized."
            )
        f = matching[0]
        properties = [
            ("signature", f"({', '.join(f'{n} {t}' for n, t in f.arguments)})"),
            ("returns", f.returns),
            ("service", f.service),
            ("endpoint", f.endpoint),
            ("path", f.path),
            ("max_batch_rows", f.max_batch_rows),
            ("max_batch_retries", f.max_batch_retries),
            ("on_batch_failure", f.on_batch_failure),
            ("batch_timeout_secs", f.batch_timeout_secs),
            ("context_headers", ", ".join(f.context_headers) or None),
        ]
        return Result([Column("property"), Column("value")], [[key, value] for key, value in properties])


def instance_statuses(view: ServiceView) -> dict[int, str]:
    """Each instance's status, from its containers'."""
    instances: dict[int, set[str]] = {}
    for container in view.containers:
        instances.setdefault(container.instance, set()).add(container.status)
    return {index: instance_status(statuses) for index, statuses in sorted(instances.items())}


def instance_status(statuses: set[str]) -> str:
    if "FAILED" in statuses:
        return "FAILED"
    if statuses == {"DONE"}:
        return "SUCCEEDED"
    return "READY" if statuses <= {"READY", "DONE"} else "PENDING"


def spec_yaml(spec: str) -> str:
    """DESCRIBE SERVICE shows the spec as YAML, whether it was given as YAML or as JSON."""
    return yaml.safe_dump(yaml.safe_load(spec), sort_keys=False)
