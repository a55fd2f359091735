"""The local SPCS, end to end: the README's `make local-up setup build push deploy CONNECTION=local`,
with the real Makefile, the pinned Snowflake CLI, Docker and the image registry, then teardown.

This is the proof of the deploy path: the same targets and the same `snow` commands that run
against an account. It is in the container tier (it needs a Docker engine).
"""

import hashlib
import http.server
import io
import ipaddress
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
import requests
import snowflake.connector

from spcs_local.emulator import client_env, connection_params
from spcs_local.emulator.registry_front import docker_login
from spcs_local.local import Layout, snow_env
from spcs_local.processes import free_port

from .conftest import BASE_IMAGE, ROOT, without_snowflake_env

pytestmark = pytest.mark.containers

REPLICAS_SPEC = """spec:
  containers:
  - name: main
    image: /tutorial_db/data_schema/tutorial_repository/my_job_image:latest
    command: ["sh", "-c", "echo replica $SNOWFLAKE_JOB_INDEX of $SNOWFLAKE_JOBS_COUNT"]
"""
NEVER_READY_SPEC = """spec:
  containers:
  - name: main
    image: /tutorial_db/data_schema/tutorial_repository/my_job_image:latest
    command: ["python3", "-m", "http.server", "8000"]
    readinessProbe: {port: 8000, path: /missing}
  endpoints:
  - {name: web, port: 8000}
"""
# A job that says which names resolve in its schema.
RESOLVER_SPEC = """spec:
  containers:
  - name: main
    image: /tutorial_db/data_schema/tutorial_repository/my_job_image:latest
    command:
    - python3
    - -c
    - |
      import socket
      for name in ("never-ready", "instances.never-ready", "echo-service"):
          try:
              print(name, bool(socket.getaddrinfo(name, 8000)))
          except OSError:
              print(name, False)
"""
LIVENESS_ON_A_MISSING_PATH = """    livenessProbe:
      port: 8000
      path: /missing
      periodSeconds: 1
      failureThreshold: 2
"""
STAGE_VOLUME_SPEC = """spec:
  containers:
  - name: main
    image: /tutorial_db/data_schema/tutorial_repository/my_job_image:latest
    command: ["sh", "-c", "cat /data/hello.txt && stat -c 'owner %u:%g' /data && echo hi > /data/from_container.txt"]
    volumeMounts:
    - {name: notebooks, mountPath: /data}
  volumes:
  - name: notebooks
    source: stage
    stageConfig: {name: "@notebooks/work"}
    uid: 10001
    gid: 10001
"""
# A service that prints what its block volume kept from the run before, then what this run is.
BLOCK_VOLUME_SPEC = """spec:
  containers:
  - name: main
    image: /tutorial_db/data_schema/tutorial_repository/my_job_image:latest
    env: {RUN: first}
    command: ["sh", "-c", "sed 's/^/kept: /' /tmp/runs 2>/dev/null; echo $RUN >> /tmp/runs; echo now: $RUN;
              trap 'exit 0' TERM; while sleep 1; do :; done"]
    volumeMounts:  # at /tmp: Docker fills a new volume from the image's folder there, writable by all
    - {name: kept, mountPath: /tmp}
  volumes:
  - {name: kept, source: block, size: 1Gi}
  platformMonitor:
    metricConfig: {groups: [system]}
"""
CORS_SETTINGS = """    corsSettings:
      Access-Control-Allow-Origin: [https://app.example]
      Access-Control-Allow-Methods: [GET, POST]
"""
FAILING_DOCKERFILE = f"""FROM {BASE_IMAGE}
ENTRYPOINT ["python3", "-c", "print('failing on purpose'); raise SystemExit(3)"]
"""


@dataclass
class Local:
    directory: Path
    variables: list[str]
    deployed: subprocess.CompletedProcess | None = None

    @property
    def home(self) -> Path:
        """A home of its own, to show that the local path never reads or writes ~/.snowflake."""
        return self.directory / "home"

    def make(self, *targets: str, timeout: float = 900) -> subprocess.CompletedProcess:
        env = {**without_snowflake_env(), "HOME": str(self.home)}
        return subprocess.run(
            ["make", "-s", *targets, "CONNECTION=local", *self.variables],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip

    def snow(self, *args: str) -> subprocess.CompletedProcess:
        """The Snowflake CLI as the README shows it, with what `make local-up` prints to export: SNOWFLAKE_HOME
        pointed at the local connection, and the local CA trusted."""
        env = {**without_snowflake_env(), "HOME": str(self.home), **snow_env(Layout(self.directory))}
        return subprocess.run([str(ROOT / ".snow-venv" / "bin" / "snow"), *args, "-c", "local"],
                              env=env, capture_output=True, text=True, timeout=300)  # fmt: skip

    def push(self, docker_client: docker.DockerClient, reference: str) -> str:
        """Push an image as `docker push` does after `snow spcs image-registry login`: with a session token.
        Docker's output, whose last line is its error if it failed."""
        token = json.loads(self.snow("spcs", "image-registry", "token", "--format", "json").stdout)["token"]
        repository, _, tag = reference.rpartition(":")
        return docker_client.images.push(repository, tag=tag, auth_config=docker_login(token))

    def pids(self) -> list[int]:
        return [int(pid.read_text().split()[0]) for pid in (self.directory / "run").glob("*.pid")]

    def sql(self, statement: str) -> list[tuple]:
        """A statement through the connector, as the apps send it: for the setup, waits and cleanup around what a
        test runs through `snow` (which takes seconds a call to start)."""
        with snowflake.connector.connect(**connection_params(client_env(self.port))) as connection:
            return connection.cursor().execute(statement).fetchall()

    @property
    def port(self) -> int:
        """The emulator's port on 127.0.0.1."""
        return int(next(v for v in self.variables if v.startswith("EMULATOR_PORT=")).split("=")[1])

    @property
    def label(self) -> str:
        """What the local SPCS labels its containers and networks with (its data dir's hash)."""
        data_dir = (self.directory / "snowflake").resolve()
        return f"spcs-local.instance={hashlib.sha256(str(data_dir).encode()).hexdigest()[:8]}"


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory, images: dict) -> Iterator[Local]:
    """`make local-up setup build push deploy CONNECTION=local`, once for the module; stopped at the end."""
    directory = tmp_path_factory.mktemp("local-spcs")
    local = Local(directory, [f"LOCAL_DIR={directory}", f"EMULATOR_PORT={free_port()}", f"REGISTRY_PORT={free_port()}"])
    local.home.mkdir()
    local.deployed = local.make("local-up", "setup", "build", "push", "deploy")
    try:
        yield local
    finally:
        local.make("local-down")


def test_make_deploy_runs_both_jobs_to_done_with_their_logs(local: Local) -> None:
    deployed = local.deployed

    assert deployed is not None and deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]
    assert "Service ECHO_SERVICE is READY, with the function my_echo_udf." in deployed.stdout
    job = deployed.stdout.split("Job tutorial_2_job_service: DONE\n")[1].splitlines()[:4]
    assert [line.split(" - ", 2)[2].split(" [")[0].split(".")[0] for line in job] == [
        "Job started", "Connection succeeded", "Executing query", "Job finished",
    ]  # fmt: skip
    assert "Job tutorial_3_job_service: DONE" in deployed.stdout
    assert "Received response from http://echo-service:8000/echo: Bob said Hello" in deployed.stdout
    assert not (local.home / ".snowflake").exists() and not (local.home / ".config" / "snowflake").exists()


def test_make_results_shows_the_jobs_row(local: Local) -> None:
    results = local.make("results")

    assert results.returncode == 0, results.stderr
    assert "| hello   |" in results.stdout


def test_make_echo_query_calls_the_echo_service_through_its_function(local: Local) -> None:
    queried = local.make("echo-query")

    assert queried.returncode == 0, queried.stderr
    answers = queried.stdout.split("SELECT my_echo_udf(message_text) FROM messages")[-1]
    assert [line.strip("| ").strip() for line in answers.splitlines() if "Bob said" in line] == [
        "Bob said Thank you", "Bob said Hello", "Bob said Hello World",
    ]  # fmt: skip


def test_the_readmes_docker_run_line_for_the_job_runs_as_written(local: Local) -> None:
    readme = (ROOT / "README.md").read_text()
    command = readme.split("The job needs a Snowflake.")[1].split("```\n")[1]
    port = next(v.split("=")[1] for v in local.variables if v.startswith("EMULATOR_PORT="))

    job = subprocess.run(["bash", "-c", command.replace("SNOWFLAKE_PORT=8765", f"SNOWFLAKE_PORT={port}")],
                         capture_output=True, text=True, timeout=300)  # fmt: skip

    assert job.returncode == 0, job.stdout + job.stderr
    assert "job-tutorial - INFO - Job finished" in job.stdout


def test_snow_shows_the_echo_service_running(local: Local) -> None:
    containers = local.snow("spcs", "service", "list-containers", "echo_service", "--format", "JSON")

    assert containers.returncode == 0, containers.stderr
    assert '"status": "READY"' in containers.stdout.replace("  ", "").replace(" :", ":")


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("spcs image-repository url tutorial_repository", "/tutorial_db/data_schema/tutorial_repository"),
        ("spcs image-repository list-images tutorial_repository", "my_echo_service_image"),
        (
            "spcs image-repository list-tags tutorial_repository --image-name "
            "/TUTORIAL_DB/DATA_SCHEMA/tutorial_repository/my_echo_service_image",
            '"/TUTORIAL_DB/DATA_SCHEMA/tutorial_repository/my_echo_service_image:latest"',
        ),
        ("spcs image-registry url", "127.0.0.1:"),
        ("spcs image-registry token", '"token"'),
        ("spcs service list", "TUTORIAL_3_JOB_SERVICE"),
        ("spcs service describe echo_service", "readinessProbe"),
        ("spcs service list-instances echo_service", "READY"),
        ("spcs service list-endpoints echo_service", "echoendpoint"),
        ("spcs service logs tutorial_2_job_service --container-name main --instance-id 0", "Job finished"),
        ("spcs compute-pool list", "TUTORIAL_COMPUTE_POOL"),
        ("spcs compute-pool status tutorial_compute_pool", "ACTIVE"),
        ("stage list-files tutorial_stage", "my_job_spec.yaml"),
    ],
)
def test_the_snow_commands_answer(local: Local, command: str, expected: str) -> None:
    answer = local.snow(*command.split(), "--format", "JSON")

    assert answer.returncode == 0, answer.stdout + answer.stderr
    assert expected in answer.stdout


def test_status_logs_and_the_public_endpoint(local: Local) -> None:
    looked = local.make("status", "logs", "endpoints")

    assert looked.returncode == 0, looked.stderr
    assert "ECHO_SERVICE" in looked.stdout and "TUTORIAL_2_JOB_SERVICE" in looked.stdout
    assert "Job finished" in looked.stdout and "Bob said Hello" in looked.stdout
    url = next(line.split(": ", 1)[1] for line in looked.stdout.splitlines() if line.startswith("echoendpoint: "))
    assert url.startswith("http://127.0.0.1:") and url.endswith("/ui")
    with pytest.raises(urllib.error.HTTPError) as refused:  # SPCS's ingress wants a Snowflake login
        urllib.request.urlopen(url, timeout=10)
    with snowflake.connector.connect(**connection_params(client_env(local.port))) as connection:
        signed = urllib.request.Request(url, headers={"Authorization": f'Snowflake Token="{connection.rest.token}"'})
        with urllib.request.urlopen(signed, timeout=10) as page:  # the tutorial's web form
            assert 'name="input"' in page.read().decode()
    assert refused.value.code == 401


def test_a_browser_logs_in_at_the_ingress_url_and_uses_the_tutorials_form(local: Local) -> None:
    """Headless Chromium (Debian's, driven by Selenium through Debian's chromedriver) at the Echo service's
    ingress_url: the login page, then the tutorial's /ui form, then Bob's answer."""
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        reason = "Debian's chromium and chromium-driver are not installed (.ci/run installs them)"
        if os.getenv("SPCS_REQUIRE_DOCKER") == "1":  # CI: the container tier runs whole
            pytest.fail(reason)
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    [endpoint] = json.loads(local.snow("spcs", "service", "list-endpoints", "echo_service", "--format", "json").stdout)
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or ""
    # Headless, and nothing from the network but the page: no updates, sync, metrics or safe-browsing lookups.
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-domain-reliability",
        "--safebrowsing-disable-auto-update",
    ):
        options.add_argument(argument)
    browser = webdriver.Chrome(service=Service(shutil.which("chromedriver") or ""), options=options)
    try:
        browser.set_page_load_timeout(30)
        browser.get(f"http://{endpoint['ingress_url']}/ui")
        assert browser.current_url.split("?")[0].endswith("/sfc-endpoint/login")
        browser.find_element(By.NAME, "user").send_keys("tutorial_user")
        browser.find_element(By.NAME, "password").send_keys("tutorial_password")
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        # Each step loads a new page: wait for what it shows (an element of the page before goes stale).
        waiting = WebDriverWait(
            browser, 30, ignored_exceptions=[NoSuchElementException, StaleElementReferenceException]
        )
        waiting.until(lambda page: page.find_element(By.ID, "input")).send_keys("Hello from a browser\n")
        waiting.until(lambda page: "Bob said Hello from a browser" in page.find_element(By.TAG_NAME, "body").text)
    finally:
        browser.quit()


def test_a_public_endpoint_wants_a_token_applies_its_cors_settings_and_keeps_its_url(local: Local) -> None:
    spec = local.directory / "cors.yaml"
    echo_spec = (ROOT / "echo-service" / "echo_spec.yaml").read_text()
    spec.write_text(echo_spec.replace("    public: true\n", "    public: true\n" + CORS_SETTINGS))
    created = local.snow("spcs", "service", "create", "cors_echo", "--compute-pool", "tutorial_compute_pool",
                         "--spec-path", str(spec))  # fmt: skip
    try:
        assert created.returncode == 0, created.stdout + created.stderr
        assert local.sql("SELECT SYSTEM$WAIT_FOR_SERVICES(120, 'cors_echo')") == [("OK",)]
        url = f"http://{ingress_url(local, 'cors_echo')}/healthcheck"
        with snowflake.connector.connect(**connection_params(client_env(local.port))) as connection:
            token = {"Authorization": f'Snowflake Token="{connection.rest.token}"'}
            allowed = requests.get(url, headers={**token, "Origin": "https://app.example"}, timeout=30)
            other = requests.get(url, headers={**token, "Origin": "https://elsewhere.example"}, timeout=30)
        refused = requests.get(url, headers={"Origin": "https://app.example"}, timeout=30)
        local.snow("spcs", "service", "suspend", "cors_echo")
        local.snow("spcs", "service", "resume", "cors_echo")

        assert refused.status_code == 401 and allowed.status_code == 200 and other.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
        assert "access-control-allow-origin" not in other.headers
        assert ingress_url(local, "cors_echo") == url.removeprefix("http://").removesuffix("/healthcheck")
    finally:
        local.sql("DROP SERVICE IF EXISTS cors_echo")


def ingress_url(local: Local, service: str) -> str:
    listed = local.snow("spcs", "service", "list-endpoints", service, "--format", "json")
    return json.loads(listed.stdout)[0]["ingress_url"]


def test_a_failing_job_fails_the_deploy_target_after_printing_its_logs(local: Local, docker_client) -> None:
    url = local.snow("spcs", "image-repository", "url", "tutorial_repository").stdout.strip()
    docker_client.images.build(fileobj=io.BytesIO(FAILING_DOCKERFILE.encode()), tag=f"{url}/failing_job:latest")
    anonymous = docker_client.images.push(f"{url}/failing_job", tag="latest")  # no login: refused, as in SPCS
    pushed = local.push(docker_client, f"{url}/failing_job:latest")

    failed = local.make("deploy-tutorial-2", "JOB_IMAGE=failing_job:latest")

    assert "The registry needs a login" in anonymous or "unauthorized" in anonymous, anonymous
    assert '"error"' not in pushed, pushed
    assert failed.returncode != 0
    assert "Job tutorial_2_job_service: FAILED\nfailing on purpose" in failed.stdout
    assert "Stopped: job tutorial_2_job_service ended FAILED" in failed.stderr
    spec = local.directory / "deploy" / "my_job_spec.yaml"
    executed = local.snow("spcs", "service", "execute-job", "failing_again", "--compute-pool", "tutorial_compute_pool",
                          "--spec-path", str(spec))  # fmt: skip
    assert executed.returncode != 0
    message = " ".join((executed.stdout + executed.stderr).replace("│", " ").split())
    assert "FAILING_AGAIN completed with status: FAILED. Container main exited with code 3." in message


PROBE = """
import ssl, sys, urllib.error, urllib.request
for url in sys.argv[1:]:
    try:  # whatever the certificate: the test is whether the emulator answers this peer
        print(url, urllib.request.urlopen(url, timeout=5, context=ssl._create_unverified_context()).status)
    except urllib.error.HTTPError as error:
        print(url, error.code)
    except OSError as error:
        print(url, "unreachable")
"""


def test_only_the_local_spcs_containers_reach_the_emulator(local: Local, docker_client: docker.DockerClient) -> None:
    [front] = [n for n in docker_client.networks.list(filters={"label": local.label}) if "-front-" in n.name]
    gateway = front.attrs["IPAM"]["Config"][0]["Gateway"]
    bridge_config = docker_client.networks.get("bridge").attrs["IPAM"]["Config"][0]
    bridge = bridge_config.get("Gateway") or str(next(ipaddress.ip_network(bridge_config["Subnet"]).hosts()))
    port = next(v.split("=")[1] for v in local.variables if v.startswith("EMULATOR_PORT="))
    urls = [f"https://{gateway}:{port}/healthcheck", f"https://{bridge}:{port}/healthcheck"]

    # A container of anyone else's, on Docker's default bridge: its peer address is not on the local SPCS's network.
    stranger = docker_client.containers.run(BASE_IMAGE, ["python3", "-c", PROBE, *urls], remove=True).decode()

    assert stranger.splitlines() == [f"{urls[0]} 403", f"{urls[1]} unreachable"]
    # The local SPCS's own containers reached it: both jobs ran (test_make_deploy_runs_both_jobs_to_done...).


def test_the_echo_services_port_is_closed_to_this_machine_except_through_its_gate(
    local: Local, docker_client: docker.DockerClient
) -> None:
    """Only the local SPCS reaches an instance's ports: through its gate, with a certificate no other program
    holds. The Echo service's own port is refused at each of its addresses (the host is on every Docker
    network), and its gate, published on 127.0.0.1, closes on a client without that certificate."""
    [guard] = [g for g in docker_client.containers.list(filters={"label": [local.label, "spcs-local.guard=1"]})
               if "ECHO_SERVICE" in g.labels["spcs-local.workload"].upper()]  # fmt: skip
    addresses = [n["IPAddress"] for n in guard.attrs["NetworkSettings"]["Networks"].values()]
    [gate] = [int(bindings[0]["HostPort"]) for bindings in guard.attrs["NetworkSettings"]["Ports"].values()]
    ca = local.directory / "snowflake" / "spcs" / "tls" / "ca.pem"

    for address in addresses:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((address, 8000), timeout=10)
    with pytest.raises((ssl.SSLError, ConnectionError, urllib.error.URLError)):  # TLS 1.3: refused after the hello
        urllib.request.urlopen(f"https://127.0.0.1:{gate}/healthcheck", timeout=10,
                               context=ssl.create_default_context(cafile=ca))  # fmt: skip
    # The local SPCS itself gets through: the Echo function answers (test_make_echo_query_calls_...).
    assert len(addresses) == 3  # the schema's network, its names network and the local SPCS's own


def test_a_container_gets_its_node_s_capacity_and_can_read_no_file_of_the_host(
    local: Local, docker_client: docker.DockerClient
) -> None:
    [echo] = docker_client.containers.list(filters={"label": [local.label, "spcs-local.container=echo"]})
    assert (echo.attrs["HostConfig"]["Memory"], echo.attrs["HostConfig"]["NanoCpus"]) == (6 * 2**30, 10**9)
    spec = local.directory / "host_files_job.yaml"
    spec.write_text(JOB_READING_HOST_FILES)

    job = local.snow("spcs", "service", "execute-job", "reads_host_files", "--compute-pool", "tutorial_compute_pool",
                     "--spec-path", str(spec))  # fmt: skip
    logs = local.snow("spcs", "service", "logs", "reads_host_files", "--container-name", "main", "--instance-id", "0")

    assert job.returncode != 0
    assert "SQL access control error" in logs.stdout and "root:" not in logs.stdout


JOB_READING_HOST_FILES = """spec:
  containers:
  - name: main
    image: /tutorial_db/data_schema/tutorial_repository/my_job_image:latest
    env:
      SNOWFLAKE_WAREHOUSE: tutorial_warehouse
    args:
    - "--query=select content from read_text('/etc/passwd')"
    - "--result_table=stolen"
"""


SECRETS_DOCKERFILE = f"""FROM {BASE_IMAGE}
ENTRYPOINT ["python3", "-c", "import os; print('env', os.environ['DB_PASSWORD'] == 'pa55', 'file', \
open('/run/secrets/api/secret_string').read() == 'key-123', oct(os.stat('/run/secrets/api/secret_string').st_mode))"]
"""
SECRETS_SPEC = """spec:
  containers:
  - name: main
    image: /tutorial_db/data_schema/tutorial_repository/reads_secrets:latest
    secrets:
    - snowflakeSecret: db_login
      secretKeyRef: password
      envVarName: DB_PASSWORD
    - snowflakeSecret:
        objectName: api_key
      directoryPath: /run/secrets/api
"""


def test_a_job_reads_its_secrets_from_an_env_var_and_a_file(local: Local, docker_client) -> None:
    url = local.snow("spcs", "image-repository", "url", "tutorial_repository").stdout.strip()
    docker_client.images.build(fileobj=io.BytesIO(SECRETS_DOCKERFILE.encode()), tag=f"{url}/reads_secrets:latest")
    local.push(docker_client, f"{url}/reads_secrets:latest")
    for sql in ("CREATE OR REPLACE SECRET db_login TYPE = PASSWORD USERNAME = 'app' PASSWORD = 'pa55'",
                "CREATE OR REPLACE SECRET api_key TYPE = GENERIC_STRING SECRET_STRING = 'key-123'"):  # fmt: skip
        assert local.snow("sql", "-q", sql).returncode == 0
    spec = local.directory / "secrets_job.yaml"
    spec.write_text(SECRETS_SPEC)

    job = local.snow("spcs", "service", "execute-job", "reads_secrets", "--compute-pool", "tutorial_compute_pool",
                     "--spec-path", str(spec))  # fmt: skip
    logs = local.snow("spcs", "service", "logs", "reads_secrets", "--container-name", "main", "--instance-id", "0")

    assert job.returncode == 0, job.stdout + job.stderr
    assert "env True file True 0o100444" in logs.stdout
    labels = [c.labels for c in docker_client.containers.list(all=True, filters={"label": local.label})]
    assert "pa55" not in json.dumps(labels)


# Code written for SPCS's contract alone: the injected variables, the token, HTTPS with the connector's defaults
# (port 443, verification on), secrets from an env var and a file; then a call out of the container.
SPCS_CONTRACT_JOB = """
import os, sys, urllib.request
import snowflake.connector
print("variables", sorted(name for name in os.environ if name.startswith("SNOWFLAKE_")))
connection = snowflake.connector.connect(
    host=os.environ["SNOWFLAKE_HOST"], account=os.environ["SNOWFLAKE_ACCOUNT"],
    authenticator="oauth", token=open("/snowflake/session/token").read(),
)
print("account", connection.cursor().execute("SELECT CURRENT_ACCOUNT()").fetchone()[0], connection.port)
print("secrets", os.environ["API_KEY"] == "key-123", open("/run/secrets/api/secret_string").read() == "key-123")
try:
    print("egress", urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())
except OSError as error:
    print("egress refused", type(error).__name__)
"""

# The token where sessionTokenConfig puts it, with its mode and the image user's ownership, and the generated
# connections.toml that the connector finds through SNOWFLAKE_HOME.
CONNECTION_CONFIG_JOB = """
import os, stat
import snowflake.connector
token = os.stat(os.path.join(os.environ["SNOWFLAKE_HOME"], "token"))
print("token", oct(stat.S_IMODE(token.st_mode)), token.st_uid == os.getuid())
with snowflake.connector.connect(connection_name="default") as connection:
    print("config", connection.cursor().execute("SELECT CURRENT_ACCOUNT()").fetchone()[0])
"""


def contract_spec(url: str) -> str:
    image = "/tutorial_db/data_schema/tutorial_repository/my_job_image:latest"
    return json.dumps({"spec": {"containers": [{
        "name": "main",
        "image": image,
        "command": ["python3", "-c", SPCS_CONTRACT_JOB, url],
        "secrets": [{"snowflakeSecret": "api_key", "secretKeyRef": "secret_string", "envVarName": "API_KEY"},
                    {"snowflakeSecret": {"objectName": "api_key"}, "directoryPath": "/run/secrets/api"}],
    }, {
        "name": "config",
        "image": image,
        "command": ["python3", "-c", CONNECTION_CONFIG_JOB],
        "sessionTokenConfig": {"path": "/app/session", "permission": "0600", "mountConnectionConfig": True},
    }]}})  # fmt: skip


@pytest.fixture
def outside(local: Local, docker_client: docker.DockerClient) -> Iterator[str]:
    """A web server outside the containers: on the host, at an address of the local SPCS's network that only
    the emulator's port is open on. Yields its URL."""
    [front] = [n for n in docker_client.networks.list(filters={"label": local.label}) if "-front-" in n.name]
    server = http.server.ThreadingHTTPServer((front.attrs["IPAM"]["Config"][0]["Gateway"], 0), Outside)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{server.server_address[0]}:{server.server_address[1]}/"
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()


class Outside(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"reached")


def test_a_job_written_for_spcs_runs_over_https_and_reaches_out_only_through_an_integration(
    local: Local, outside: str
) -> None:
    address = outside.removeprefix("http://").rstrip("/")
    for sql in ("CREATE OR REPLACE SECRET api_key TYPE = GENERIC_STRING SECRET_STRING = 'key-123'",
                f"CREATE OR REPLACE NETWORK RULE outside TYPE = HOST_PORT MODE = EGRESS VALUE_LIST = ('{address}')",
                "CREATE OR REPLACE EXTERNAL ACCESS INTEGRATION outside_access ALLOWED_NETWORK_RULES = (outside) "
                "ENABLED = TRUE"):  # fmt: skip
        assert local.snow("sql", "-q", sql).returncode == 0
    spec = local.directory / "contract_job.yaml"
    spec.write_text(contract_spec(outside))
    outputs = {}
    for name, integration in (("closed_job", []), ("open_job", ["--eai-name", "outside_access"])):
        job = local.snow("spcs", "service", "execute-job", name, "--compute-pool", "tutorial_compute_pool",
                         "--spec-path", str(spec), *integration)  # fmt: skip
        assert job.returncode == 0, job.stdout + job.stderr
        outputs[name] = local.snow("spcs", "service", "logs", name, "--container-name", "main", "--instance-id", "0")
    config = local.snow("spcs", "service", "logs", "closed_job", "--container-name", "config", "--instance-id", "0")

    closed = outputs["closed_job"].stdout
    assert "variables ['SNOWFLAKE_ACCOUNT', 'SNOWFLAKE_DATABASE', 'SNOWFLAKE_HOST', 'SNOWFLAKE_PORT', " \
           "'SNOWFLAKE_SCHEMA']" in closed  # fmt: skip
    assert "account TUTORIAL 443" in closed and "secrets True True" in closed
    assert "egress refused URLError" in closed
    assert "egress reached" in outputs["open_job"].stdout
    assert "token 0o600 True" in config.stdout and "config TUTORIAL" in config.stdout


def test_a_running_services_egress_follows_its_integrations_at_once(
    local: Local, outside: str, docker_client: docker.DockerClient
) -> None:
    address = outside.removeprefix("http://").rstrip("/")
    for sql in (f"CREATE OR REPLACE NETWORK RULE outside TYPE = HOST_PORT MODE = EGRESS VALUE_LIST = ('{address}')",
                "CREATE OR REPLACE EXTERNAL ACCESS INTEGRATION outside_access ALLOWED_NETWORK_RULES = (outside) "
                "ENABLED = TRUE"):  # fmt: skip
        assert local.snow("sql", "-q", sql).returncode == 0
    [echo] = docker_client.containers.list(filters={"label": [local.label, "spcs-local.container=echo"]})
    probe = ["python3", "-c", PROBE, outside]

    def reached() -> bool:
        return echo.exec_run(probe).output.decode().split()[-1] == "200"

    before = reached()
    opened = local.snow("sql", "-q", "ALTER SERVICE echo_service SET EXTERNAL_ACCESS_INTEGRATIONS = (outside_access)")
    after_alter = reached()
    dropped = local.snow("sql", "-q", "DROP INTEGRATION outside_access")

    assert opened.returncode == 0 and dropped.returncode == 0
    assert (before, after_alter, reached()) == (False, True, False)


def test_snow_spcs_service_upgrade_runs_the_new_spec_and_back(local: Local) -> None:
    echo_spec = ROOT / "echo-service" / "echo_spec.yaml"
    alice = local.directory / "alice_spec.yaml"
    alice.write_text(echo_spec.read_text().replace("CHARACTER_NAME: Bob", "CHARACTER_NAME: Alice"))

    upgraded = local.snow("spcs", "service", "upgrade", "echo_service", "--spec-path", str(alice))
    answer = local.snow("sql", "-q", "SELECT my_echo_udf('hello') AS answer")
    back = local.snow("spcs", "service", "upgrade", "echo_service", "--spec-path", str(echo_spec))
    again = local.snow("sql", "-q", "SELECT my_echo_udf('hello') AS answer")

    assert upgraded.returncode == 0 and back.returncode == 0, upgraded.stdout + upgraded.stderr + back.stderr
    assert "Alice said hello" in answer.stdout and "Bob said hello" in again.stdout


def test_the_project_definition_deploys_the_echo_service_and_upgrades_it(local: Local) -> None:
    """snowflake.yml, as the README shows it: `snow spcs ... deploy`, then `--upgrade` after a spec change."""
    alice = local.directory / "project-alice"
    (alice / "echo-service").mkdir(parents=True)
    shutil.copy(ROOT / "snowflake.yml", alice)
    spec = (ROOT / "echo-service" / "echo_spec.yaml").read_text()
    (alice / "echo-service" / "echo_spec.yaml").write_text(spec.replace("CHARACTER_NAME: Bob", "CHARACTER_NAME: Alice"))
    # `make setup` made the pool and the repository: the pool's deploy sets its properties, the repository's
    # says it exists, as against an account.
    pool = local.snow("spcs", "compute-pool", "deploy", "--upgrade", "--project", str(ROOT))
    repository = local.snow("spcs", "image-repository", "deploy", "--project", str(ROOT))
    local.snow("sql", "-q", "DROP SERVICE echo_service")

    deployed = local.snow("spcs", "service", "deploy", "echo_service", "--project", str(ROOT))
    waited = local.snow("sql", "-q", "SELECT SYSTEM$WAIT_FOR_SERVICES(120, 'echo_service')")
    bob = local.snow("sql", "-q", "SELECT my_echo_udf('hello') AS answer")
    upgraded = local.snow("spcs", "service", "deploy", "echo_service", "--upgrade", "--project", str(alice))
    answer = local.snow("sql", "-q", "SELECT my_echo_udf('hello') AS answer")
    back = local.snow("spcs", "service", "deploy", "echo_service", "--upgrade", "--project", str(ROOT))

    assert pool.returncode == 0, pool.stdout + pool.stderr
    assert "Image-repository tutorial_db.data_schema.tutorial_repository already exists" in repository.stderr
    assert "Service ECHO_SERVICE successfully created." in deployed.stdout, deployed.stdout + deployed.stderr
    assert "| OK " in waited.stdout and "Bob said hello" in bob.stdout
    assert upgraded.returncode == 0 and back.returncode == 0, upgraded.stdout + upgraded.stderr + back.stderr
    assert "Alice said hello" in answer.stdout
    assert not (ROOT / "output").exists()  # snow's bundle folder, removed after each deploy


def test_two_echo_instances_share_the_service_functions_batches(local: Local) -> None:
    local.sql("ALTER SERVICE echo_service SET MIN_INSTANCES = 2 MAX_INSTANCES = 2")
    waited = local.sql("SELECT SYSTEM$WAIT_FOR_SERVICES(120, 'echo_service')")
    instances = local.snow("spcs", "service", "list-instances", "echo_service", "--format", "json")
    # 4,000 rows, in batches of at most the default 1,000, taking turns between the two instances.
    answered = local.sql(
        "SELECT count(DISTINCT my_echo_udf('hello ' || seq4())) FROM table(generator(rowcount => 4000))"
    )
    logs = [local.snow("spcs", "service", "logs", "echo_service", "--container-name", "echo", "--instance-id", index)
            for index in ("0", "1")]  # fmt: skip
    local.sql("ALTER SERVICE echo_service SET MIN_INSTANCES = 1 MAX_INSTANCES = 1")

    assert waited == [("OK",)]
    assert [row["instance_id"] for row in json.loads(instances.stdout)] == ["0", "1"]
    assert answered == [(4000,)]
    received = [sum(int(n) for n in re.findall(r"Received (\d+) rows", log.stdout)) for log in logs]
    assert min(received) >= 1000, received  # each instance got at least one whole batch


def test_a_job_with_two_replicas_tells_each_its_index(local: Local) -> None:
    spec = local.directory / "replicas.yaml"
    spec.write_text(REPLICAS_SPEC)

    job = local.snow("spcs", "service", "execute-job", "replicated", "--compute-pool", "tutorial_compute_pool",
                     "--spec-path", str(spec), "--replicas", "2")  # fmt: skip
    logs = [local.snow("spcs", "service", "logs", "replicated", "--container-name", "main", "--instance-id", index)
            for index in ("0", "1")]  # fmt: skip

    assert job.returncode == 0, job.stdout + job.stderr
    assert ["replica 0 of 2" in logs[0].stdout, "replica 1 of 2" in logs[1].stdout] == [True, True]


def test_a_services_dns_name_resolves_to_its_ready_instances_only(local: Local) -> None:
    """A service whose readiness probe never passes: from a job of the same schema, `instances.<name>` finds its
    instance and its own name nothing, while the Echo service's name (READY) resolves."""
    local.sql(
        f"CREATE SERVICE never_ready IN COMPUTE POOL tutorial_compute_pool FROM SPECIFICATION $${NEVER_READY_SPEC}$$"
    )
    resolver = local.directory / "resolver.yaml"
    resolver.write_text(RESOLVER_SPEC)
    try:
        deadline = time.monotonic() + 60
        while "Readiness probe is failing" not in str(local.sql("SHOW SERVICE CONTAINERS IN SERVICE never_ready")):
            assert time.monotonic() < deadline, "the service's container did not start within 60 s"
            time.sleep(1)
        job = local.snow("spcs", "service", "execute-job", "resolver", "--compute-pool", "tutorial_compute_pool",
                         "--spec-path", str(resolver))  # fmt: skip
        logs = local.snow("spcs", "service", "logs", "resolver", "--container-name", "main", "--instance-id", "0")

        assert job.returncode == 0, job.stdout + job.stderr
        found = [line.strip() for line in logs.stdout.splitlines() if line.strip()]
        assert found[-3:] == ["never-ready False", "instances.never-ready True", "echo-service True"], logs.stdout
    finally:
        local.sql("DROP SERVICE IF EXISTS never_ready")


def test_a_failing_liveness_probe_restarts_the_container_and_keeps_its_previous_logs(local: Local) -> None:
    spec = local.directory / "unhealthy.yaml"
    echo_spec = (ROOT / "echo-service" / "echo_spec.yaml").read_text()
    spec.write_text(echo_spec.replace("  endpoints:", LIVENESS_ON_A_MISSING_PATH + "  endpoints:"))
    created = local.snow("spcs", "service", "create", "unhealthy", "--compute-pool", "tutorial_compute_pool",
                         "--spec-path", str(spec))  # fmt: skip

    def restarts() -> int:  # SHOW SERVICE CONTAINERS' restart_count
        return max([row[11] for row in local.sql("SHOW SERVICE CONTAINERS IN SERVICE unhealthy")] or [0])

    try:
        assert created.returncode == 0, created.stdout + created.stderr
        deadline = time.monotonic() + 90
        while restarts() < 1:  # two failures a second apart, once the service listens
            assert time.monotonic() < deadline, "not restarted within 90 s"
            time.sleep(0.5)
        listed = local.snow("spcs", "service", "list-containers", "unhealthy", "--format", "json")
        assert json.loads(listed.stdout)[0]["restart_count"] >= 1, listed.stdout + listed.stderr
        previous = local.snow("spcs", "service", "logs", "unhealthy", "--container-name", "echo", "--instance-id",
                              "0", "--previous-logs")  # fmt: skip
        assert previous.returncode == 0 and "Uvicorn running" in previous.stdout, previous.stdout + previous.stderr
    finally:
        local.sql("DROP SERVICE IF EXISTS unhealthy")


def test_snow_remote_build_builds_the_echo_image_into_the_repository(local: Local) -> None:
    built = local.snow("spcs", "service", "remote-build", "--build-context-dir", str(ROOT / "echo-service"),
                       "--location", "tutorial_repository", "--name", "remote_echo", "--image-tag", "v1")  # fmt: skip
    images = local.snow("spcs", "image-repository", "list-images", "tutorial_repository", "--format", "json")
    history = local.snow("spcs", "service", "remote-build-history", "--format", "json")

    assert built.returncode == 0 and "completed successfully" in built.stdout, built.stdout + built.stderr
    assert ("remote_echo", "v1") in [(image["image_name"], image["tags"]) for image in json.loads(images.stdout)]
    [job] = json.loads(history.stdout)
    logs = local.snow("spcs", "service", "logs", job["job_name"].rsplit(".", 1)[1], "--container-name", "main",
                      "--instance-id", "0")  # fmt: skip
    assert job["status"] == "DONE" and "v1: digest: sha256:" in logs.stdout, logs.stdout + logs.stderr


def test_a_stage_volume_reads_what_was_put_and_what_the_container_writes_shows_in_list(local: Local) -> None:
    hello = local.directory / "hello.txt"
    hello.write_text("put from the host\n")
    spec = local.directory / "stage_volume.yaml"
    spec.write_text(STAGE_VOLUME_SPEC)
    local.sql("CREATE STAGE IF NOT EXISTS notebooks")
    put = local.snow("stage", "copy", str(hello), "@notebooks/work")

    job = local.snow("spcs", "service", "execute-job", "stage_round_trip", "--compute-pool", "tutorial_compute_pool",
                     "--spec-path", str(spec))  # fmt: skip
    logs = local.snow("spcs", "service", "logs", "stage_round_trip", "--container-name", "main", "--instance-id", "0")
    listed = local.snow("stage", "list-files", "notebooks", "--format", "json")

    assert put.returncode == 0, put.stdout + put.stderr
    assert job.returncode == 0, job.stdout + job.stderr
    assert "put from the host" in logs.stdout and "owner 10001:10001" in logs.stdout
    assert listed.returncode == 0, listed.stdout + listed.stderr
    names = [row["name"] for row in json.loads(listed.stdout)]
    assert "notebooks/work/from_container.txt" in names and "notebooks/work/hello.txt" in names, names


def test_a_block_volume_survives_an_upgrade(local: Local) -> None:
    spec = local.directory / "block_volume.yaml"
    spec.write_text(BLOCK_VOLUME_SPEC)
    upgraded = local.directory / "block_volume_upgraded.yaml"
    upgraded.write_text(BLOCK_VOLUME_SPEC.replace("RUN: first", "RUN: second"))
    created = local.snow("spcs", "service", "create", "keeper", "--compute-pool", "tutorial_compute_pool",
                         "--spec-path", str(spec))  # fmt: skip
    try:
        assert created.returncode == 0, created.stdout + created.stderr
        assert local.sql("SELECT SYSTEM$WAIT_FOR_SERVICES(120, 'keeper')") == [("OK",)]
        upgrade = local.snow("spcs", "service", "upgrade", "keeper", "--spec-path", str(upgraded))
        logs = local.snow("spcs", "service", "logs", "keeper", "--container-name", "main", "--instance-id", "0")

        assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
        assert "kept: first" in logs.stdout and "now: second" in logs.stdout, logs.stdout
        # Its platformMonitor asks for the system metrics: Docker's, in the event table every few seconds.
        cpu_rows = (
            "SELECT count(*) FROM snowflake.telemetry.events WHERE record_type = 'METRIC' AND "
            "resource_attributes:\"snow.service.name\" = 'KEEPER' AND record:metric.name = 'container.cpu.usage'"
        )
        deadline = time.monotonic() + 30
        while local.sql(cpu_rows) == [(0,)]:
            assert time.monotonic() < deadline, "no CPU metric within 30 s"
            time.sleep(1)
        metrics = local.snow("spcs", "service", "metrics", "keeper", "--container-name", "main", "--instance-id", "0")
        assert "container.memory.usage" in metrics.stdout and "container.cpu.usage" in metrics.stdout, metrics.stdout
    finally:
        local.sql("DROP SERVICE IF EXISTS keeper")


def test_a_jobs_logs_and_events_are_read_from_the_event_table_after_it_is_dropped(local: Local) -> None:
    spec = local.directory / "exported.yaml"
    spec.write_text(REPLICAS_SPEC + "  logExporters:\n    eventTableConfig:\n      logLevel: INFO\n")
    job = local.snow("spcs", "service", "execute-job", "exported", "--compute-pool", "tutorial_compute_pool",
                     "--spec-path", str(spec))  # fmt: skip
    events = local.snow("spcs", "service", "events", "exported", "--container-name", "main", "--instance-id", "0",
                        "--format", "json")  # fmt: skip
    metrics = local.snow("spcs", "service", "metrics", "exported", "--container-name", "main", "--instance-id", "0")
    local.sql("DROP SERVICE exported")
    logs = local.sql(
        "SELECT value FROM snowflake.telemetry.events WHERE record_type = 'LOG' "
        "AND resource_attributes:\"snow.service.name\" = 'EXPORTED'"
    )

    assert job.returncode == 0, job.stdout + job.stderr
    assert events.returncode == 0 and metrics.returncode == 0, events.stderr + metrics.stderr
    assert "CONTAINER.STATUS_CHANGE" in events.stdout and "DONE" in events.stdout, events.stdout
    assert any("replica" in value for (value,) in logs), logs


def test_after_a_restart_the_service_comes_back_at_the_same_ingress_url(local: Local) -> None:
    before = local.snow("spcs", "service", "list-endpoints", "echo_service", "--format", "json")
    restarted = local.make("local-down", "local-up")
    assert restarted.returncode == 0, restarted.stderr

    waited = local.snow("sql", "-q", "SELECT SYSTEM$WAIT_FOR_SERVICES(120, 'echo_service')")
    after = local.snow("spcs", "service", "list-endpoints", "echo_service", "--format", "json")

    assert waited.returncode == 0 and "| OK " in waited.stdout, waited.stdout + waited.stderr
    [url] = {endpoint["ingress_url"] for endpoint in json.loads(before.stdout) + json.loads(after.stdout)}
    deadline = time.monotonic() + 10
    while True:  # the ingress opens it again within a second of the start
        try:
            urllib.request.urlopen(f"http://{url}/ui", timeout=5)
        except urllib.error.HTTPError as refused:
            assert refused.code == 401  # answered, by the ingress: a login is needed
            break
        except OSError:
            assert time.monotonic() < deadline, f"nothing answers at {url} after the restart"
            time.sleep(0.1)


def test_teardown_and_local_down_leave_nothing_running(local: Local, docker_client: docker.DockerClient) -> None:
    pids = local.pids()
    assert len(pids) == 2

    torn_down = local.make("teardown", "CONFIRM=yes", "local-down")

    assert torn_down.returncode == 0, torn_down.stdout[-2000:] + torn_down.stderr[-2000:]
    assert "DROP STAGE IF EXISTS tutorial_stage" in torn_down.stdout
    assert docker_client.containers.list(all=True, filters={"label": local.label}) == []
    assert docker_client.networks.list(filters={"label": local.label}) == []
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    # CONFIRM=yes dropped the pool, the repository (its images) and the stage (its files); the tables stay.
    assert "TUTORIAL_COMPUTE_POOL" not in (local.directory / "snowflake" / "spcs" / "catalog.json").read_text()
    assert not (local.directory / "snowflake" / "stages" / "TUTORIAL_DB" / "DATA_SCHEMA" / "TUTORIAL_STAGE").exists()
    assert (local.directory / "snowflake" / "databases" / "TUTORIAL_DB.db").exists()
