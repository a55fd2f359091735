"""The SYSTEM$ functions of SPCS, in SELECT and CALL: waiting for services, their logs and status, and a pool's."""

import json
from typing import Any

from spcs_local.emulator.catalog import Catalog
from spcs_local.emulator.results import Column, Result, invalid
from spcs_local.emulator.statements.parser import (
    Context,
    Parser,
    Run,
    name_in,
    resolve,
    sql_literal,
)  # fmt: skip
from spcs_local.emulator.workload import parse_timestamp

SYSTEM_FUNCTIONS = (
    "SYSTEM$WAIT_FOR_SERVICES",
    "SYSTEM$GET_SERVICE_LOGS",
    "SYSTEM$GET_SERVICE_STATUS",
    "SYSTEM$GET_COMPUTE_POOL_STATUS",
)


class SystemFunctions:
    """Part of Statements (its `catalog`): SYSTEM$ functions."""

    catalog: Catalog

    def parse_select(self, parser: Parser) -> Run | None:
        parser.expect("SELECT")
        return self.system_function(parser, column_from_call=True)

    def parse_call(self, parser: Parser) -> Run | None:
        parser.expect("CALL")
        return self.system_function(parser, column_from_call=False)

    def system_function(self, parser: Parser, column_from_call: bool) -> Run | None:
        token = parser.peek()
        if token.kind != "word" or token.value not in SYSTEM_FUNCTIONS or parser.peek(1).text != "(":
            return None
        start = parser.next()
        arguments = parser.arguments()
        parser.end()
        # SELECT names its column after the call, CALL after the function.
        column = f"{start.value}({', '.join(map(sql_literal, arguments))})" if column_from_call else start.value
        function = getattr(self, start.value.removeprefix("SYSTEM$").lower())
        return lambda context: Result([Column(column)], [[function(context, *arguments)]])

    def wait_for_services(self, context: Context, seconds: Any = None, *names: Any) -> str:
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0 or not names:
            raise invalid("SYSTEM$WAIT_FOR_SERVICES takes a number of seconds and one or more service names.")
        return self.catalog.wait_for_services([resolve(name_in(n), context) for n in names], seconds, context.cancelled)

    def get_service_logs(
        self, context: Context, service: Any = None, instance: Any = None, container: Any = None,
        lines: Any = 100_000, previous: Any = False, since: Any = "", timestamps: Any = False, *rest: Any,
    ) -> str:  # fmt: skip
        """The arguments as `snow spcs service logs` sends them: name, instance, container, lines, previous,
        since (an RFC 3339 timestamp, or ''), and whether each line starts with its timestamp."""
        if service is None or instance is None or container is None:
            raise invalid("SYSTEM$GET_SERVICE_LOGS takes a service name, an instance id and a container name.")
        try:
            instance_id, line_count = int(instance), int(lines)
            after = parse_timestamp(str(since)) if since else None
        except (TypeError, ValueError):
            raise invalid("SYSTEM$GET_SERVICE_LOGS: the instance id and the line count are whole numbers, and "
                           "since_timestamp is a timestamp such as 2026-01-01T00:00:00Z.") from None  # fmt: skip
        name = resolve(name_in(service), context)
        return self.catalog.logs(
            name, instance_id, str(container), line_count, after, timestamps is True, previous is True
        )

    def get_service_status(self, context: Context, service: Any = None, *rest: Any) -> str:
        view = self.catalog.view(self.catalog.service(resolve(name_in(service), context)))
        return json.dumps([
            {"status": c.status, "message": c.message, "containerName": c.name, "instanceId": str(c.instance),
             "serviceName": view.service.name, "image": c.image, "restartCount": c.restarts,
             "startTime": c.started and c.started.isoformat()}
            for c in view.containers
        ])  # fmt: skip

    def get_compute_pool_status(self, context: Context, pool: Any = None, *rest: Any) -> str:
        compute_pool = self.catalog.compute_pool(".".join(name_in(pool)))
        state = self.catalog.compute_pool_state(compute_pool)
        return json.dumps({"status": state, "message": f"Compute pool is {state.lower()}.", "applications": []})
