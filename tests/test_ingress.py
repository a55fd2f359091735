"""The public endpoints' ingress, with real HTTP on loopback: the ingress proxy of a catalog whose backend is a
fake, in front of a real server that answers with the headers it got. Refused without a login, answered with
a session token or a browser's login, with the Sf-Context headers SPCS sets and the endpoint's CORS settings."""

import http.client
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import snowflake.connector

from spcs_local.emulator import client_env, connection_params
from spcs_local.emulator.ingress import LOGIN, LOGOUT, URL_SECONDS, Ingress
from spcs_local.processes import free_port

from .fakes import FakeBackend, LocalSPCS, serving

TOKEN = "a-session-token"
SPEC = """spec:
  containers:
  - name: web
    image: /tutorial_db/data_schema/tutorial_repository/my_echo_service_image:latest
  endpoints:
  - name: ui
    port: 8000
    public: true
    corsSettings:
      Access-Control-Allow-Origin: [https://allowed.example]
      Access-Control-Allow-Methods: [GET, POST]
      Access-Control-Allow-Headers: [X-Custom]
  - name: internal
    port: 9000
"""


class Headers(http.server.BaseHTTPRequestHandler):
    """Answers with the path and the headers it got, as JSON."""

    def do_GET(self) -> None:
        body = json.dumps({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def ingress(tmp_path: Path) -> Iterator[tuple[LocalSPCS, str]]:
    """The service `web` behind the ingress: its endpoint `ui` is the real server above."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Headers)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    spcs = LocalSPCS(tmp_path, FakeBackend(ports={8000: server.server_address[1]}))
    spcs.with_pool_and_images("my_echo_service_image")
    spcs.sql(f"CREATE SERVICE web IN COMPUTE POOL tutorial_compute_pool FROM SPECIFICATION $${SPEC}$$")
    spcs.sql("SELECT SYSTEM$WAIT_FOR_SERVICES(10, 'web')")
    proxy = Ingress(spcs.catalog, lambda token: "TUTORIAL_USER" if token == TOKEN else None,
                    lambda user, password: (user, password) == ("tutorial_user", "tutorial_password"),
                    caller_token=lambda user: f"caller-token-of-{user}")  # fmt: skip
    proxy.start()
    [endpoint] = [e for e in spcs.rows("SHOW ENDPOINTS IN SERVICE web") if e["is_public"]]
    url = f"http://{endpoint['ingress_url']}"
    deadline = time.monotonic() + 10
    while True:  # the ingress opens the endpoint within a second
        try:
            requests.get(url, timeout=1)
            break
        except requests.ConnectionError:
            assert time.monotonic() < deadline, "the ingress did not open the endpoint"
            time.sleep(0.05)
    yield spcs, url
    proxy.close()
    server.shutdown()
    server.server_close()


def test_a_request_without_a_login_is_refused_and_a_browser_is_sent_to_the_login_page(ingress) -> None:
    _, url = ingress

    program = requests.get(f"{url}/echo", timeout=5)
    browser = requests.get(f"{url}/ui?x=1", headers={"Accept": "text/html"}, allow_redirects=False, timeout=5)
    wrong = requests.get(f"{url}/echo", headers={"Authorization": 'Snowflake Token="guessed"'}, timeout=5)

    assert program.status_code == 401 and "Snowflake Token" in program.text
    assert browser.status_code == 302 and browser.headers["location"] == f"{LOGIN}?next=/ui%3Fx%3D1"
    assert wrong.status_code == 401


def test_a_session_token_is_answered_with_the_callers_context_and_nothing_the_client_made_up(ingress) -> None:
    _, url = ingress
    headers = {"Authorization": f'Snowflake Token="{TOKEN}"', "Sf-Context-Current-User": "ACCOUNTADMIN"}

    answer = requests.get(f"{url}/echo?q=1", headers=headers, timeout=5)

    got = answer.json()
    assert answer.status_code == 200 and got["path"] == "/echo?q=1"
    assert got["headers"]["sf-context-current-user"] == "TUTORIAL_USER"
    assert "authorization" not in got["headers"] and "sf-context-current-user-token" not in got["headers"]


def test_a_browser_logs_in_on_the_login_page_and_out_again(ingress) -> None:
    _, url = ingress
    browser = requests.Session()

    page = browser.get(f"{url}{LOGIN}?next=/ui", timeout=5)
    refused = browser.post(f"{url}{LOGIN}", data={"user": "tutorial_user", "password": "nope", "next": "/ui"},
                           timeout=5)  # fmt: skip
    signed_in = browser.post(f"{url}{LOGIN}", data={"user": "tutorial_user", "password": "tutorial_password",
                                                    "next": "/ui"}, timeout=5)  # fmt: skip
    browser.get(f"{url}{LOGOUT}", timeout=5)
    after = browser.get(f"{url}/ui", timeout=5)

    assert '<form method="post"' in page.text and "Incorrect username or password" in refused.text
    assert signed_in.status_code == 200 and signed_in.json()["headers"]["sf-context-current-user"] == "TUTORIAL_USER"
    assert "sfc-local-ingress" not in signed_in.json()["headers"].get("cookie", "")
    assert after.status_code == 401


def test_cors_headers_go_to_an_allowed_origin_only(ingress) -> None:
    _, url = ingress
    token = {"Authorization": f'Snowflake Token="{TOKEN}"'}

    allowed = requests.get(f"{url}/echo", headers={**token, "Origin": "https://allowed.example"}, timeout=5)
    other = requests.get(f"{url}/echo", headers={**token, "Origin": "https://other.example"}, timeout=5)
    preflight = requests.options(f"{url}/echo", headers=preflight_from("https://allowed.example"), timeout=5)
    refused = requests.options(f"{url}/echo", headers=preflight_from("https://other.example"), timeout=5)

    assert allowed.headers["access-control-allow-origin"] == "https://allowed.example"
    assert "access-control-allow-origin" not in other.headers
    assert preflight.status_code == 204 and preflight.headers["access-control-allow-methods"] == "GET, POST"
    assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers


def preflight_from(origin: str) -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": "POST"}


def test_the_ingress_url_is_kept_across_suspend_resume_and_an_upgrade(ingress) -> None:
    spcs, url = ingress

    spcs.sql("ALTER SERVICE web SUSPEND")
    spcs.sql("ALTER SERVICE web RESUME")
    spcs.sql(f"ALTER SERVICE web FROM SPECIFICATION $${SPEC.replace('name: web', 'name: web2')}$$")

    urls = {e["name"]: e["ingress_url"] for e in spcs.rows("SHOW ENDPOINTS IN SERVICE web")}
    assert f"http://{urls['ui']}" == url and urls["internal"] is None  # a private endpoint gets no ingress
    assert requests.get(url, headers={"Authorization": f'Snowflake Token="{TOKEN}"'}, timeout=5).status_code == 200


def test_a_body_over_the_limit_is_refused_before_it_is_read(ingress) -> None:
    _, url = ingress
    connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=5)
    connection.putrequest("POST", "/echo")
    connection.putheader("Authorization", f'Snowflake Token="{TOKEN}"')
    connection.putheader("Content-Length", str(33 * 2**20))  # over the 32 MiB; only a little is sent
    connection.endheaders(b"x" * 1024)

    assert connection.getresponse().status == 413
    connection.close()


def test_under_execute_as_caller_the_service_gets_the_callers_token(ingress) -> None:
    spcs, url = ingress
    spec = SPEC + "capabilities:\n  securityContext:\n    executeAsCaller: true\n"
    spcs.sql(f"ALTER SERVICE web FROM SPECIFICATION $${spec}$$")

    got = requests.get(f"{url}/echo", headers={"Authorization": f'Snowflake Token="{TOKEN}"'}, timeout=5).json()

    assert got["headers"]["sf-context-current-user-token"] == TOKEN


def test_under_execute_as_caller_a_browsers_login_brings_a_caller_token_and_only_there(ingress) -> None:
    spcs, url = ingress
    browser = requests.Session()
    login = {"user": "tutorial_user", "password": "tutorial_password", "next": "/ui"}

    before = browser.post(f"{url}{LOGIN}", data=login, timeout=5).json()["headers"]
    spcs.sql(f"ALTER SERVICE web FROM SPECIFICATION $${SPEC}capabilities:\n  securityContext:\n"
             "    executeAsCaller: true\n$$")  # fmt: skip
    after = browser.get(f"{url}/ui", timeout=5).json()["headers"]

    assert "sf-context-current-user-token" not in before
    assert after["sf-context-current-user-token"] == "caller-token-of-TUTORIAL_USER"


def test_an_instance_that_does_not_answer_is_a_502_never_a_500(ingress) -> None:
    spcs, url = ingress
    spcs.backend.ports = {8000: free_port()}  # the instance went: nothing listens where it answered
    time.sleep(URL_SECONDS + 0.1)  # the ingress looks its instances up again

    answer = requests.get(f"{url}/echo", headers={"Authorization": f'Snowflake Token="{TOKEN}"'}, timeout=5)

    assert answer.status_code == 502 and "did not answer" in answer.text


def test_an_execute_as_caller_service_logs_in_as_its_caller_with_its_token_and_the_callers(tmp_path: Path) -> None:
    """Caller's rights: the service's own token, a dot, then the caller's token (from Sf-Context-Current-User-
    Token) log in as the caller. Another service's token, or a token that is no caller's, logs in nobody."""
    spcs = LocalSPCS(tmp_path / "spcs", FakeBackend()).with_pool_and_images("my_echo_service_image")
    as_caller = SPEC + "capabilities:\n  securityContext:\n    executeAsCaller: true\n"
    spcs.sql(f"CREATE SERVICE asker IN COMPUTE POOL tutorial_compute_pool FROM SPECIFICATION $${as_caller}$$")
    spcs.sql(f"CREATE SERVICE plain IN COMPUTE POOL tutorial_compute_pool FROM SPECIFICATION $${SPEC}$$")
    spcs.sql("SELECT SYSTEM$WAIT_FOR_SERVICES(10, 'asker', 'plain')")
    tokens = {w.key.split("#")[0]: w.containers[0].files["/snowflake/session/token"].text for w in spcs.backend.started}
    asker, plain = tokens["TUTORIAL_DB.DATA_SCHEMA.ASKER"], tokens["TUTORIAL_DB.DATA_SCHEMA.PLAIN"]

    with serving(spcs, tmp_path / "snowflake") as base:
        params = connection_params(client_env(int(base.rsplit(":", 1)[1])))
        with snowflake.connector.connect(**params) as caller:
            oauth = {**params, "authenticator": "oauth", "password": "", "login_timeout": 10}
            with snowflake.connector.connect(**oauth, token=f"{asker}.{caller.rest.token}") as service:
                logged_in = service.cursor().execute("select 1").fetchone()
            for token in (f"{plain}.{caller.rest.token}", f"{asker}.not-a-callers-token"):
                with pytest.raises(snowflake.connector.errors.DatabaseError, match="Incorrect username or password"):
                    snowflake.connector.connect(**oauth, token=token)

    assert logged_in == (1,)
