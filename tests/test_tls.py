"""HTTPS back to Snowflake, as SPCS containers connect: the local CA kept under the data dir, the front's
certificate, and real clients (both connector lines) that trust it through the standard trust settings alone,
with verification on."""

import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.verification import DNSName, PolicyBuilder, Store

from spcs_local.emulator import tls

from .conftest import ROOT, without_snowflake_env
from .fakes import FakeBackend, LocalSPCS, serving
from .test_clients import CLIENTS, client_lines, run_client

JOB = "/tutorial_db/data_schema/tutorial_repository/my_job_image:latest"
CLIENT = """
import json, sys
import snowflake.connector
with snowflake.connector.connect(**json.loads(sys.argv[1])) as connection:
    account = connection.cursor().execute("select current_account()").fetchone()[0]
    print(snowflake.connector.__version__.split(".")[0], account)
"""


def test_the_ca_is_made_once_and_its_keys_are_the_users_alone(tmp_path: Path) -> None:
    first = tls.ensure(tmp_path / "tls", ("snowflake.local-spcs.internal",), ("172.30.0.1",))
    again = tls.ensure(tmp_path / "tls", ("snowflake.local-spcs.internal",), ("172.30.0.1",))

    assert first.ca.read_bytes() == again.ca.read_bytes()
    assert first.certificate.read_bytes() == again.certificate.read_bytes()  # still good: not made again
    modes = {file.name: stat.S_IMODE(file.stat().st_mode) for file in (tmp_path / "tls").iterdir()}
    assert modes == {"ca.pem": 0o644, "ca-key.pem": 0o600, "front.pem": 0o644, "front-key.pem": 0o600,
                     "bundle.pem": 0o644, "gate.pem": 0o644, "gate-key.pem": 0o600, "client.pem": 0o644,
                     "client-key.pem": 0o600}  # fmt: skip
    assert first.client.read_bytes() == again.client.read_bytes()  # the local SPCS's own, kept too
    assert stat.S_IMODE((tmp_path / "tls").stat().st_mode) == 0o700
    bundle = first.bundle.read_text()
    assert first.ca.read_text() in bundle and bundle.count("BEGIN CERTIFICATE") > 10  # the usual roots too


def test_the_fronts_certificate_names_its_host_and_address_and_follows_them(tmp_path: Path) -> None:
    first = tls.ensure(tmp_path, ("snowflake.local-spcs.internal",), ("172.30.0.1",))
    moved = tls.ensure(tmp_path, ("snowflake.local-spcs.internal",), ("172.31.0.1",))  # a new network's gateway

    certificate = x509.load_pem_x509_certificate(moved.certificate.read_bytes())
    assert tls.alt_names(certificate) == ["snowflake.local-spcs.internal", "172.31.0.1"]
    assert first.ca.read_bytes() == moved.ca.read_bytes()  # the same CA: containers' trust holds
    ca = x509.load_pem_x509_certificate(moved.ca.read_bytes())
    verifier = PolicyBuilder().store(Store([ca])).build_server_verifier(DNSName("snowflake.local-spcs.internal"))
    assert verifier.verify(certificate, [])[-1] == ca  # a chain a strict (RFC 5280) verifier accepts


@pytest.fixture
def https_front(tmp_path: Path) -> Iterator[tuple[str, str, tls.TlsFiles]]:
    """The front over HTTPS on 127.0.0.1 with the local CA's certificate, and a job's OAuth token."""
    spcs = LocalSPCS(tmp_path / "spcs", FakeBackend(job_seconds=0))
    spcs.with_pool_and_images("my_job_image")
    spec = f"spec:\n  containers:\n  - name: main\n    image: {JOB}\n"
    spcs.sql(f"EXECUTE JOB SERVICE IN COMPUTE POOL tutorial_compute_pool NAME = j FROM SPECIFICATION $${spec}$$")
    token = spcs.backend.started[-1].containers[0].files["/snowflake/session/token"].text
    files = tls.ensure(tmp_path / "tls", ("localhost",), ("127.0.0.1",))
    with serving(spcs, tmp_path / "snowflake", tls=files) as url:
        yield url, token, files


@pytest.mark.parametrize("client", CLIENTS)
def test_a_client_with_host_account_and_token_trusts_the_https_front_through_the_standard_settings(
    https_front: tuple[str, str, tls.TlsFiles], client: str
) -> None:
    url, token, files = https_front
    port = int(url.rsplit(":", 1)[1])
    params = {"host": "localhost", "port": port, "account": "tutorial", "authenticator": "oauth", "token": token}

    trust = {"SSL_CERT_FILE": str(files.bundle), "REQUESTS_CA_BUNDLE": str(files.bundle)}  # as containers get
    trusted = client_lines(CLIENTS[client], params, trust, CLIENT)
    # No bundle: no login (5.x would retry the handshake five times more, with backoff, before it says so).
    untrusted = run_client(CLIENTS[client], {**params, "retry_max_attempts": 1}, script=CLIENT)

    assert trusted == [f"{client[0]} TUTORIAL"]
    assert untrusted.returncode != 0  # verification stays on
    assert "certificate verify failed" in untrusted.stderr or "UnknownIssuer" in untrusted.stderr  # 4.x, 5.x


def test_tutorial_2s_job_inside_spcs_logs_in_with_its_token_over_https(https_front, tmp_path: Path) -> None:
    url, token, files = https_front
    token_file = tmp_path / "token"
    token_file.write_text(token)
    # What SPCS gives a container (the port is the test front's, not 443), the spec's warehouse, the trust
    # settings: no user, no password, no protocol.
    env = {"SNOWFLAKE_ACCOUNT": "tutorial", "SNOWFLAKE_HOST": "localhost", "SNOWFLAKE_PORT": url.rsplit(":", 1)[1],
           "SNOWFLAKE_DATABASE": "TUTORIAL_DB", "SNOWFLAKE_SCHEMA": "DATA_SCHEMA",
           "SNOWFLAKE_WAREHOUSE": "tutorial_warehouse", "SSL_CERT_FILE": str(files.bundle),
           "REQUESTS_CA_BUNDLE": str(files.bundle)}  # fmt: skip
    # Only a test moves the token path; the job itself always reads /snowflake/session/token.
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import main; main.TOKEN_PATH = sys.argv[2]; "
        "sys.argv = ['main.py'] + sys.argv[3:]; sys.exit(main.main())"
    )
    args = [str(ROOT / "tutorial-2-job"), str(token_file), "--query=select 'hello' as greeting",
            "--result_table=greetings"]  # fmt: skip

    job = subprocess.run([sys.executable, "-c", code, *args], env={**without_snowflake_env(), **env},
                         capture_output=True, text=True, timeout=60)  # fmt: skip

    assert job.returncode == 0, job.stdout + job.stderr
    assert "Job finished" in job.stdout and token not in job.stdout + job.stderr
