"""An instance's gate (guard_scripts.GATE), run here as its guard runs it, before a real HTTP server: the local
SPCS gets through with its own certificate, over a kept-alive connection as service functions use it; a
client without that certificate, or with another CA's, gets nothing through."""

import http.client
import http.server
import shutil
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from spcs_local.emulator import tls
from spcs_local.emulator.guard_scripts import GATE
from spcs_local.processes import free_port, stop


class Hello(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = f"hello from {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[tuple[int, tls.TlsFiles]]:
    """The gate's port, in front of a real server, and the local SPCS's certificates."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    files = tls.ensure(tmp_path / "tls", ("localhost",), ("127.0.0.1",))
    folder = tmp_path / "gate"  # what the guard holds in /gate
    folder.mkdir()
    (folder / "gate.py").write_bytes(GATE)
    for name, source in (("ca.pem", files.ca), ("gate.pem", files.gate), ("gate-key.pem", files.gate_key)):
        shutil.copy(source, folder / name)
    port = free_port()
    process = subprocess.Popen([sys.executable, str(folder / "gate.py"), f"{port}:{server.server_address[1]}"],
                               stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert process.stdout and process.stdout.readline() == "ready\n"
        yield port, files
    finally:
        stop(process)
        server.shutdown()


def test_the_local_spcs_gets_through_with_its_own_certificate(gate) -> None:
    port, files = gate
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=tls.gate_context(files), timeout=10)

    answers = []
    for path in ("/healthcheck", "/echo"):  # one connection, kept alive, as the service functions' calls
        connection.request("GET", path)
        answers.append(connection.getresponse().read())

    assert answers == [b"hello from /healthcheck", b"hello from /echo"]


def test_without_the_local_spcs_certificate_nothing_gets_through(gate, tmp_path: Path) -> None:
    port, files = gate
    trusting = ssl.create_default_context(cafile=files.ca)  # trusts the gate, shows no certificate
    strangers = tls.ensure(tmp_path / "another", ("localhost",), ("127.0.0.1",))  # another CA's certificate
    other = ssl.create_default_context(cafile=files.ca)
    other.load_cert_chain(strangers.client, strangers.client_key)

    for context in (trusting, other):
        connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
        with pytest.raises((ssl.SSLError, ConnectionError)):  # TLS 1.3: the gate's refusal comes after the hello
            connection.request("GET", "/healthcheck")
            connection.getresponse()
