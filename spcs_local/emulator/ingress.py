"""The public endpoints' ingress, as SPCS's: each public endpoint answers on its own port of 127.0.0.1, kept for
the service's life, and only to a Snowflake login.

- Programs send `Authorization: Snowflake Token="<token>"` with a session token of the local SPCS (what a
  connector's login holds, as in the docs' example); a browser gets a login page (the local user and password)
  and a cookie. `/sfc-endpoint/logout` ends that.
- The request goes to a READY instance of the service with the client's `Sf-Context-*` headers removed and
  `Sf-Context-Current-User` added (and, under `executeAsCaller`, `Sf-Context-Current-User-Token`); the token
  and the ingress cookie stay behind.
- The endpoint's `corsSettings` apply: an allowed origin gets its Access-Control headers, any other none.
- Bounded as SPCS's ingress: 90 s idle, a request body of at most 32 MiB, headers of at most 64 KiB.

One thread runs an event loop with a uvicorn server for each endpoint and one httpx client; another looks at
the catalog each second for endpoints to open or close. It knows no SQL and no Docker: the catalog says where
an endpoint's READY instances answer.
"""

import asyncio
import concurrent.futures
import contextlib
import html
import logging
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, quote

import httpx
import uvicorn

from spcs_local.emulator import proxy
from spcs_local.emulator.catalog import Catalog, Service
from spcs_local.emulator.guard import HEADER_BYTES, Doors, Refused, Sessions, header, read_body
from spcs_local.emulator.proxy import ResponseStarted, Unreachable, headers_of, respond
from spcs_local.emulator.results import SnowflakeError

logger = logging.getLogger(__name__)

LOGIN, LOGOUT = "/sfc-endpoint/login", "/sfc-endpoint/logout"
COOKIE = "sfc-local-ingress"
IDLE_SECONDS = 90
URL_SECONDS = 2.0  # how long a lookup of an endpoint's READY instances holds
BODY_BYTES = 32 * 2**20
LOGIN_FORM_BYTES = 8 * 2**10
LOGIN_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Sign in to Snowflake</title></head>
<body><h1>Sign in to Snowflake</h1><p>The local SPCS's user and password open {service}'s endpoint.</p>
<form method="post" action="{login}"><input type="hidden" name="next" value="{next}">
<label>User <input name="user" autocomplete="username"></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<button type="submit">Sign in</button></form>{problem}</body></html>"""


class Ingress:
    def __init__(
        self, catalog: Catalog, user_of: Callable[[str], str | None], password_ok: Callable[[str, str], bool],
        context: ssl.SSLContext | None = None, caller_token: Callable[[str], str] = lambda user: "",
    ) -> None:  # fmt: skip
        self.catalog, self.user_of, self.password_ok = catalog, user_of, password_ok
        self.context = context  # for the instances' gates (https)
        self.caller_token = caller_token  # a caller token for a user who logged in with a browser
        self.browsers: Sessions[tuple[str, str]] = Sessions(lambda cookie, user: None)  # cookie -> user, token
        self.loop = asyncio.new_event_loop()
        self.servers: dict[int, tuple[uvicorn.Server, concurrent.futures.Future]] = {}  # port -> its server, serving
        self.stopping = threading.Event()
        self.client: httpx.AsyncClient | None = None
        self.urls: dict[tuple[str, str], tuple[float, list[str]]] = {}  # (service, endpoint) -> until when, URLs
        self.threads = [threading.Thread(target=self.loop.run_forever, name="ingress", daemon=True),
                        threading.Thread(target=self.watch, name="ingress-endpoints", daemon=True)]  # fmt: skip

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def close(self) -> None:
        """Stop every endpoint's server (each within moments: uvicorn looks every tenth of a second), then the loop."""
        self.stopping.set()
        self.threads[1].join(5)
        for server, _ in self.servers.values():
            server.should_exit = True
        for _, serving in self.servers.values():
            with contextlib.suppress(Exception):  # one that failed has nothing left to stop
                serving.result(timeout=5)
        if self.client is not None:
            asyncio.run_coroutine_threadsafe(self.client.aclose(), self.loop).result(timeout=5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.threads[0].join(5)

    # --- which endpoints are open --------------------------------------------------------------

    def watch(self) -> None:
        """Open each public endpoint's port, close those of endpoints gone, once a second."""
        while not self.stopping.is_set():
            wanted = self.catalog.ingress_endpoints()
            for port in [port for port in self.servers if port not in wanted]:
                self.servers.pop(port)[0].should_exit = True
            for port, (key, endpoint) in wanted.items():
                if port not in self.servers:
                    self.open(port, key, endpoint)
            self.stopping.wait(1.0)

    def open(self, port: int, key: str, endpoint: str) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as error:  # taken by another program: tried again each second
            sock.close()
            logger.warning("the ingress of %s %s can't listen on 127.0.0.1:%d: %s", key, endpoint, port, error)
            return

        async def app(scope: dict, receive: Any, send: Any) -> None:
            await self.answer(scope, receive, send, key, endpoint)

        config = uvicorn.Config(app, http="h11", h11_max_incomplete_event_size=HEADER_BYTES, lifespan="off",
                                ws="none", log_level="error", timeout_keep_alive=IDLE_SECONDS)  # fmt: skip
        server = uvicorn.Server(config)
        self.servers[port] = (server, asyncio.run_coroutine_threadsafe(server.serve(sockets=[sock]), self.loop))

    # --- one request ----------------------------------------------------------------------------

    async def answer(self, scope: dict, receive: Any, send: Any, key: str, endpoint: str) -> None:
        try:
            Doors().check(scope)
            service = self.catalog.services.get(key)
            if service is None or endpoint not in service.ingress:
                raise Refused(404, "This endpoint's service is gone.")
            cors = cors_headers(service, endpoint, header(scope, b"origin"))
            if scope["method"] == "OPTIONS" and header(scope, b"access-control-request-method"):
                await respond(send, 204 if cors else 403, b"", cors)  # a preflight: no login, as browsers send
                return
            if scope["path"] == LOGIN:
                await self.login(scope, receive, send, service)
                return
            if scope["path"] == LOGOUT:
                self.browsers.end(cookie_of(scope))
                await respond(send, 303, b"", [(b"location", LOGIN.encode()), (b"set-cookie", expired_cookie())])
                return
            user, token = self.caller(scope)
            if user is None:
                await self.refuse(scope, send)
                return
            urls = await self.instances(service, endpoint)
            caller = [(b"sf-context-current-user", user.encode())]
            if token and service.executes_as_caller:
                caller.append((b"sf-context-current-user-token", token.encode()))
            try:
                await self.forward(scope, receive, send, urls[secrets.randbelow(len(urls))], caller, cors)
            except Unreachable:  # that instance went (an upgrade, a scale-down): once more, on one READY now
                self.urls.pop((service.key, endpoint), None)
                urls = await self.instances(service, endpoint)
                await self.forward(scope, receive, send, urls[secrets.randbelow(len(urls))], caller, cors)
        except Unreachable:
            await respond(send, 502, b"The service's instance did not answer.\n", [(b"content-type", b"text/plain")])
        except Refused as refused:
            await respond(send, refused.status, f"{refused}\n".encode(), [(b"content-type", b"text/plain")])
        except SnowflakeError as error:  # not READY, suspended without AUTO_RESUME, ...
            await respond(send, 503, f"{error.message}\n".encode(), [(b"content-type", b"text/plain")])
        except ResponseStarted:  # the service's answer broke off: nothing more can be said to the client
            pass
        except Exception as error:  # our bug: one line for the client, the traceback in the log, never a 500
            logger.exception("the ingress of %s %s failed", key, endpoint)
            message = f"The local SPCS's ingress failed: {type(error).__name__}.\n".encode()
            await respond(send, 502, message, [(b"content-type", b"text/plain")])

    async def instances(self, service: Service, endpoint: str) -> list[str]:
        """Where the endpoint's READY instances answer, looked up at most every URL_SECONDS: a lookup asks
        Docker, a request should not."""
        cached = self.urls.get((service.key, endpoint))
        if cached and cached[0] > time.monotonic():
            return cached[1]
        urls = await asyncio.to_thread(self.catalog.endpoint_urls, service, endpoint)
        self.urls[(service.key, endpoint)] = (time.monotonic() + URL_SECONDS, urls)
        return urls

    def caller(self, scope: dict) -> tuple[str | None, str | None]:
        """Who sends the request: a session token's user, or a browser's login; (None, None) when nobody."""
        authorization = header(scope, b"authorization")
        if authorization.startswith('Snowflake Token="') and authorization.endswith('"'):
            token = authorization[len('Snowflake Token="') : -1]
            return self.user_of(token), token
        return self.browsers.get(cookie_of(scope)) or (None, None)

    async def refuse(self, scope: dict, send: Any) -> None:
        """A browser goes to the login page; a program gets 401."""
        if "text/html" in header(scope, b"accept"):
            target = scope["path"] + (f"?{scope['query_string'].decode()}" if scope.get("query_string") else "")
            await respond(send, 302, b"", [(b"location", f"{LOGIN}?next={quote(target)}".encode())])
        else:
            message = b'Snowflake authentication is required: send Authorization: Snowflake Token="<token>".\n'
            await respond(send, 401, message, [(b"content-type", b"text/plain")])

    async def login(self, scope: dict, receive: Any, send: Any, service: Service) -> None:
        """The login page; its form, posted, opens a browser session and goes on to where the browser was going."""
        form = {k: v[0] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
        problem = ""
        if scope["method"] == "POST":
            form |= {k: v[0] for k, v in parse_qs((await read_body(scope, receive, LOGIN_FORM_BYTES)).decode()).items()}
            if self.password_ok(form.get("user", ""), form.get("password", "")):
                cookie, user = secrets.token_urlsafe(32), form["user"].upper()
                self.browsers.add(cookie, (user, self.caller_token(user)))
                target = form.get("next", "/")
                target = target if target.startswith("/") and not target.startswith("//") else "/"
                set_cookie = f"{COOKIE}={cookie}; Path=/; HttpOnly; SameSite=Lax".encode()
                await respond(send, 303, b"", [(b"location", target.encode()), (b"set-cookie", set_cookie)])
                return
            problem = "<p>Incorrect username or password was specified.</p>"
        page = LOGIN_PAGE.format(service=html.escape(service.name), login=LOGIN, problem=problem,
                                 next=html.escape(form.get("next", "/")))  # fmt: skip
        await respond(send, 200, page.encode(), [(b"content-type", b"text/html; charset=utf-8")])

    async def forward(
        self, scope: dict, receive: Any, send: Any, base: str, caller: list[tuple[bytes, bytes]],
        cors: list[tuple[bytes, bytes]],
    ) -> None:  # fmt: skip
        """The request to the instance, streamed both ways; the client's Sf-Context-* headers, its token and the
        ingress cookie stay behind."""
        if self.client is None:
            timeout = httpx.Timeout(IDLE_SECONDS, connect=10.0)
            verify = self.context or True
            self.client = httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False, verify=verify)
        headers = headers_of(scope, sent_on)
        cookies = without_ours(header(scope, b"cookie"))
        headers += ([(b"cookie", cookies.encode("latin-1"))] if cookies else []) + caller
        url = base + quote(scope["path"]) + (f"?{scope['query_string'].decode()}" if scope.get("query_string") else "")
        await proxy.forward(self.client, scope, receive, send, url, headers, BODY_BYTES, cors)


def cors_headers(service: Service, endpoint: str, origin: str) -> list[tuple[bytes, bytes]]:
    """The endpoint's corsSettings for this origin: its Access-Control headers when the origin is allowed."""
    found = next((e for e in service.document["spec"].get("endpoints") or [] if e.get("name") == endpoint), {})
    settings = found.get("corsSettings") or {}
    allowed = [str(o).rstrip("/") for o in settings.get("Access-Control-Allow-Origin") or []]
    if not origin or origin.rstrip("/") not in allowed:
        return []
    headers = [(b"access-control-allow-origin", origin.encode()), (b"vary", b"Origin")]
    for name in ("Access-Control-Allow-Methods", "Access-Control-Allow-Headers", "Access-Control-Expose-Headers"):
        if settings.get(name):
            headers.append((name.lower().encode(), ", ".join(map(str, settings[name])).encode()))
    return headers


def sent_on(name: bytes) -> bool:
    return not (name.startswith(b"sf-context-") or name in (b"authorization", b"cookie"))


def cookie_of(scope: dict) -> str:
    for part in header(scope, b"cookie").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value
    return ""


def without_ours(cookies: str) -> str:
    return "; ".join(
        part.strip() for part in cookies.split(";") if part.strip() and not part.strip().startswith(f"{COOKIE}=")
    )


def expired_cookie() -> bytes:
    return f"{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax".encode()
