"""`make setup build push deploy ...`: the tutorials' steps against a real account, through `snow` and `docker`.

Each action runs the Snowflake CLI (`snow`, from its own environment) and docker as commands, one step
at a time, and stops at the first that fails with that step's exit code. A job that ends FAILED has
its logs printed, then fails the action. No step prints a password or token: the connection comes
from `connections.toml` (CONNECTION=name) or from SNOWFLAKE_* env vars (a temporary connection).
"""

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent

NO_CONNECTION = """No Snowflake connection is configured, so nothing was run. Either:
  - add a connection to connections.toml (`snow connection add`, or edit ~/.snowflake/connections.toml)
    and name it: make deploy CONNECTION=<name> (or set CONNECTION in local.mk), or make it the default; or
  - set SNOWFLAKE_ACCOUNT, SNOWFLAKE_USER and SNOWFLAKE_PASSWORD (or SNOWFLAKE_PRIVATE_KEY_FILE)."""


class StepFailed(Exception):
    def __init__(self, step: str, code: int) -> None:
        super().__init__(f"{step} failed (exit code {code})")
        self.code = code


@dataclass(frozen=True)
class App:
    folder: str
    spec: str
    image: str  # the Makefile's image variable's value, name:tag


@dataclass(frozen=True)
class Config:
    connection: str
    role: str
    database: str
    schema: str
    warehouse: str
    compute_pool: str
    repository: str
    stage: str
    echo_image: str
    job_image: str
    caller_image: str
    confirm: bool
    local_dir: str
    snow: str
    docker: str

    @property
    def apps(self) -> dict[str, App]:
        return {
            "echo": App("echo-service", "echo_spec.yaml", self.echo_image),
            "tutorial-2": App("tutorial-2-job", "my_job_spec.yaml", self.job_image),
            "tutorial-3": App("tutorial-3-service-to-service", "service_to_service_spec.yaml", self.caller_image),
        }


JOBS = {"tutorial-2": "tutorial_2_job_service", "tutorial-3": "tutorial_3_job_service"}
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,254}")
CONNECTION_NAME = re.compile(r"[A-Za-z0-9_.-]+")
IMAGE = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?")


class Deploy:
    def __init__(self, config: Config) -> None:
        self.config = config

    # --- running commands -------------------------------------------------------------------

    def connection_flags(self, with_context: bool = True) -> list[str]:
        c = self.config
        flags = ["-c", c.connection] if c.connection else ["-x"] if os.getenv("SNOWFLAKE_ACCOUNT") else []
        if with_context:
            flags += ["--role", c.role, "--warehouse", c.warehouse, "--database", c.database, "--schema", c.schema]
        return flags

    def run(self, step: str, args: list[str], capture: bool = False, env: dict[str, str] | None = None) -> str:
        print(f"--> {step}", flush=True)
        result = subprocess.run(
            args, text=True, stdout=subprocess.PIPE if capture else None, check=False, env={**os.environ, **(env or {})}
        )
        if result.returncode != 0:
            raise StepFailed(step, result.returncode)
        return result.stdout or ""

    def snow(self, step: str, *args: str, capture: bool = False, with_context: bool = True) -> str:
        return self.run(step, [self.config.snow, *args, *self.connection_flags(with_context)], capture)

    def sql(self, statement: str, capture: bool = False, step: str | None = None) -> str:
        args = ["sql", "-q", statement] + (["--format", "JSON"] if capture else [])
        return self.snow(step or statement, *args, capture=capture)

    # --- checks -----------------------------------------------------------------------------

    def check_connection(self) -> None:
        # The local connection is written by `make local-up`, which every target runs first.
        if self.config.connection == "local" or (os.getenv("SNOWFLAKE_ACCOUNT") and not self.config.connection):
            return
        listed = subprocess.run(
            [self.config.snow, "connection", "list", "--format", "JSON"], text=True, capture_output=True, check=False
        )
        try:
            connections = json.loads(listed.stdout) if listed.returncode == 0 else []
        except json.JSONDecodeError:
            connections = []
        names = {entry.get("connection_name") for entry in connections}
        has_default = any(entry.get("is_default") for entry in connections)
        if (self.config.connection and self.config.connection not in names) or not (
            self.config.connection or has_default
        ):
            missing = (
                f"The connection '{self.config.connection}' is not in connections.toml. "
                if self.config.connection
                else ""
            )
            print(missing + NO_CONNECTION, file=sys.stderr)
            raise StepFailed("checking the Snowflake connection", 2)

    def check_docker(self) -> None:
        if not shutil.which(self.config.docker):
            print(
                f"'{self.config.docker}' is not installed or not on PATH: build and push need Docker.", file=sys.stderr
            )
            raise StepFailed("checking for docker", 2)

    # --- the targets ------------------------------------------------------------------------

    def setup(self) -> None:
        c = self.config
        names = {"role": c.role, "database": c.database, "schema": c.schema, "warehouse": c.warehouse}
        names |= {"compute_pool": c.compute_pool, "repository": c.repository, "stage": c.stage}
        variables = [arg for name, value in names.items() for arg in ("-D", f"{name}={value}")]
        for part in ("accountadmin", "role"):
            file = str(ROOT / "common-setup" / f"{part}.sql")
            self.snow(f"Common Setup, {part} part", "sql", "-f", file, *variables, with_context=False)

    def repository_url(self) -> str:
        url = self.snow("image repository URL", "spcs", "image-repository", "url", self.config.repository, capture=True)
        return url.strip().splitlines()[-1].strip()

    def build(self) -> None:
        self.check_docker()
        url = self.repository_url()
        # Without buildx (as with Debian's docker client), build with the classic builder.
        has_buildx = subprocess.run([self.config.docker, "buildx", "version"], capture_output=True).returncode == 0
        for app in self.config.apps.values():
            tag = f"{url}/{app.image}"
            self.run(
                f"build {tag}",
                [self.config.docker, "build", "--platform", "linux/amd64", "-t", tag, str(ROOT / app.folder)],
                env=None if has_buildx else {"DOCKER_BUILDKIT": "0"},
            )

    def push(self) -> None:
        self.check_docker()
        url = self.repository_url()
        self.snow("log docker in to the image registry", "spcs", "image-registry", "login", with_context=False)
        for app in self.config.apps.values():
            self.run(f"push {url}/{app.image}", [self.config.docker, "push", f"{url}/{app.image}"])

    def upload_specs(self, *keys: str) -> None:
        """Upload the apps' specs in one `snow stage copy`, their image paths set to this repository."""
        c = self.config
        rendered = Path(c.local_dir or ".local", "deploy")
        shutil.rmtree(rendered, ignore_errors=True)
        rendered.mkdir(parents=True)
        for key in keys:
            app = c.apps[key]
            spec = yaml.safe_load((ROOT / app.folder / app.spec).read_text())
            for container in spec["spec"]["containers"]:
                container["image"] = f"/{c.database}/{c.schema}/{c.repository}/{app.image}"
            (rendered / app.spec).write_text(yaml.safe_dump(spec, sort_keys=False))
        names = ", ".join(c.apps[key].spec for key in keys)
        self.snow(f"upload {names}", "stage", "copy", str(rendered / "*.yaml"), f"@{c.stage}", "--overwrite")

    def start_echo(self) -> None:
        """Tutorial 1: the service, once READY, and its function, in one `snow sql`."""
        c = self.config
        self.sql(
            "DROP SERVICE IF EXISTS echo_service;\n"
            f"CREATE SERVICE echo_service IN COMPUTE POOL {c.compute_pool} FROM @{c.stage} "
            "SPECIFICATION_FILE='echo_spec.yaml' MIN_INSTANCES=1 MAX_INSTANCES=1;\n"
            "SELECT SYSTEM$WAIT_FOR_SERVICES(600, 'echo_service');\n"
            "CREATE OR REPLACE FUNCTION my_echo_udf (InputText varchar) RETURNS varchar "
            "SERVICE=echo_service ENDPOINT=echoendpoint AS '/echo'",
            step="CREATE SERVICE echo_service, wait until READY, CREATE FUNCTION my_echo_udf",
        )
        print("Service ECHO_SERVICE is READY, with the function my_echo_udf.")

    def run_job(self, key: str) -> None:
        """EXECUTE JOB SERVICE from the staged spec; print its status and logs; fail when it FAILED."""
        c, job, app = self.config, JOBS[key], self.config.apps[key]
        statement = (
            f"DROP SERVICE IF EXISTS {job};\nEXECUTE JOB SERVICE IN COMPUTE POOL {c.compute_pool} NAME={job} "
            f"FROM @{c.stage} SPECIFICATION_FILE='{app.spec}'"
        )
        with contextlib.suppress(StepFailed):  # a FAILED job fails the statement: its status and logs say why
            self.sql(statement, step=f"EXECUTE JOB SERVICE {job} (SPECIFICATION_FILE='{app.spec}')")
        spec = yaml.safe_load((ROOT / app.folder / app.spec).read_text())
        logs = "".join(
            f";\nSELECT SYSTEM$GET_SERVICE_LOGS('{job}', 0, '{container['name']}')"
            for container in spec["spec"]["containers"]
        )
        query = f"SHOW SERVICE CONTAINERS IN SERVICE {job}{logs}"
        results = json.loads(self.sql(query, capture=True, step=f"status and logs of {job}") or "[]")
        rows = results[0] if results else []
        status = rows[0].get("status", "UNKNOWN") if rows else "UNKNOWN"
        print(f"Job {job}: {status}", flush=True)
        for result in results[1:]:
            print(next(iter(result[0].values())) if result else "", flush=True)
        if status != "DONE":
            raise StepFailed(f"job {job} ended {status}", 1)

    def deploy_echo(self) -> None:
        self.upload_specs("echo")
        self.start_echo()

    def deploy_job(self, key: str) -> None:
        self.upload_specs(key)
        self.run_job(key)

    def deploy(self) -> None:
        self.upload_specs("echo", "tutorial-2", "tutorial-3")
        self.start_echo()
        self.run_job("tutorial-2")
        self.run_job("tutorial-3")

    def status(self) -> None:
        self.sql(f"SHOW SERVICES IN SCHEMA {self.config.database}.{self.config.schema}")

    def logs(self) -> None:
        self.snow(
            "logs of echo_service",
            "spcs",
            "service",
            "logs",
            "echo_service",
            "--container-name",
            "echo",
            "--instance-id",
            "0",
        )
        for job in JOBS.values():
            self.snow(
                f"logs of {job}", "spcs", "service", "logs", job, "--container-name", "main", "--instance-id", "0"
            )

    def results(self) -> None:
        self.sql("SELECT * FROM results")

    def echo_query(self) -> None:
        self.sql(
            "SELECT my_echo_udf('hello!');\n"
            "CREATE TABLE IF NOT EXISTS messages (message_text VARCHAR) "
            "AS (SELECT * FROM (VALUES ('Thank you'), ('Hello'), ('Hello World')));\n"
            "SELECT my_echo_udf(message_text) FROM messages",
            step="Tutorial 1's queries of my_echo_udf",
        )

    def endpoints(self) -> None:
        out = self.snow(
            "endpoints of echo_service",
            "spcs",
            "service",
            "list-endpoints",
            "echo_service",
            "--format",
            "JSON",
            capture=True,
        )
        for endpoint in json.loads(out or "[]"):
            url = endpoint.get("ingress_url") or ""
            # The local SPCS publishes on 127.0.0.1 over plain HTTP; an account's ingress is HTTPS.
            scheme = "http" if url.startswith("127.0.0.1:") else "https"
            ready = "." in url and " " not in url  # else a message such as "provisioning in progress"
            print(f"{endpoint.get('name')}: {scheme}://{url}/ui" if ready else f"{endpoint.get('name')}: {url}")

    def teardown(self) -> None:
        c = self.config
        for job in JOBS.values():
            self.sql(f"DROP SERVICE IF EXISTS {job}")
        self.sql("DROP FUNCTION IF EXISTS my_echo_udf(varchar)")
        self.sql("DROP SERVICE IF EXISTS echo_service")
        self.sql(f"ALTER COMPUTE POOL {c.compute_pool} STOP ALL")
        if not c.confirm:
            print("Kept the compute pool, image repository and stage: `make teardown CONFIRM=yes` drops them too.")
            return
        self.sql(f"DROP IMAGE REPOSITORY IF EXISTS {c.repository}")
        self.sql(f"DROP STAGE IF EXISTS {c.stage}")
        # The pool belongs to ACCOUNTADMIN (Common Setup made it).
        drop_pool = f"DROP COMPUTE POOL IF EXISTS {c.compute_pool}"
        self.snow(drop_pool, "sql", "-q", drop_pool, "--role", "ACCOUNTADMIN", with_context=False)


ACTIONS = {
    "setup": Deploy.setup,
    "build": Deploy.build,
    "push": Deploy.push,
    "deploy": Deploy.deploy,
    "deploy-echo": Deploy.deploy_echo,
    "deploy-tutorial-2": lambda d: d.deploy_job("tutorial-2"),
    "deploy-tutorial-3": lambda d: d.deploy_job("tutorial-3"),
    "status": Deploy.status,
    "logs": Deploy.logs,
    "results": Deploy.results,
    "echo-query": Deploy.echo_query,
    "endpoints": Deploy.endpoints,
    "teardown": Deploy.teardown,
}


def problem_with(values: dict[str, str]) -> str | None:
    """The first value that can't be what its Makefile variable names, in one line: names go into SQL and
    commands, so only plain names pass."""
    identifiers = ("role", "database", "schema", "warehouse", "compute_pool", "repository", "stage")
    for name, value in values.items():
        variable = name.upper()
        if name == "connection" and value and not CONNECTION_NAME.fullmatch(value):
            return f"{variable} {value!r} is not a connection name: letters, digits, '_', '-' and '.'"
        if name in identifiers and not IDENTIFIER.fullmatch(value):
            return (f"{variable} {value!r} is not a Snowflake identifier: letters, digits, '_' and '$', "
                    "starting with a letter or '_'")  # fmt: skip
        if name.endswith("_image") and not IMAGE.fullmatch(value):
            return f"{variable} {value!r} is not an image name:tag (lowercase letters, digits, '.', '_' and '-')"
        if name == "confirm" and value.lower() not in ("", "yes", "no"):
            return f"{variable} {value!r} must be yes or empty"
    return None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=ACTIONS)
    for name in Config.__dataclass_fields__:
        parser.add_argument(f"--{name.replace('_', '-')}", default="")
    args = parser.parse_args(argv)
    values = {name: getattr(args, name) for name in Config.__dataclass_fields__}
    if problem := problem_with(values):
        print(f"{problem}. Nothing was run.", file=sys.stderr)
        return 2
    config = Config(**{**values, "confirm": args.confirm.lower() == "yes"})
    deploy = Deploy(config)
    try:
        deploy.check_connection()
        ACTIONS[args.action](deploy)
    except StepFailed as error:
        print(f"Stopped: {error}", file=sys.stderr)
        return error.code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
