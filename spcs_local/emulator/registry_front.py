"""The image registry's door, as Snowflake's: HTTPS at the repository URLs' host, and `/login`.

Docker and `snow` reach the local registry where SHOW IMAGE REPOSITORIES says (127.0.0.1:<registry port>),
over HTTPS with a certificate of the local CA, as they reach an account's registry: Docker takes any
certificate on loopback, `snow` trusts the CA's bundle through REQUESTS_CA_BUNDLE (make local-up prints it).

- `GET /login` with Basic `0sessiontoken:{"token": "<session token>", ...}` (what `snow` sends, the token of
  `snow spcs image-registry token`) gives a bearer token for the registry, as Snowflake's registry does; a
  token that is no live session's is refused with 401.
- Everything else needs a bearer token of `/login`, as an account's registry does: without one (or with one
  gone) it gets 401 and the challenge that sends Docker to `/login` with what `docker login` (`snow spcs
  image-registry login`) stored. With one, it goes on, streamed, to Debian's registry behind the door on its
  own loopback port. The local SPCS logs in with a token of its own to pull what it runs.
- Only loopback peers, with a loopback Host (no DNS rebinding from a web page).
"""

import base64
import binascii
import json
import logging
import secrets
from collections.abc import Callable
from typing import Any

import httpx

from spcs_local.emulator import proxy
from spcs_local.emulator.guard import Doors, Refused, Sessions, header
from spcs_local.emulator.proxy import ResponseStarted, Unreachable, headers_of, respond

logger = logging.getLogger(__name__)

TOKEN_SECONDS = 3600
IDLE_SECONDS = 300  # a layer's upload may pause while Docker compresses the next part
LAYER_BYTES = 16 * 2**30  # the largest request body passed on: one layer
SESSION_USER = "0sessiontoken"  # the user name a session token logs in with, as Snowflake's registry takes it
TEXT = [(b"content-type", b"text/plain")]


class RegistryFront:
    """An ASGI app: `upstream` is Debian's registry (http://127.0.0.1:port), `user_of` a session token's user."""

    def __init__(self, upstream: str, user_of: Callable[[str], str | None], own_token: str) -> None:
        self.upstream, self.user_of = upstream.rstrip("/"), user_of
        self.own_token = own_token  # the local SPCS's own, with which it pulls and pushes (docker_login)
        self.bearers: Sessions[str] = Sessions(lambda token, user: None, idle=TOKEN_SECONDS)  # token -> user
        self.client: httpx.AsyncClient | None = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        try:
            Doors().check(scope)
            if scope["path"] == "/login":
                await self.login(scope, send)
                return
            authorization = header(scope, b"authorization")
            bearer = authorization.removeprefix("Bearer ") if authorization.startswith("Bearer ") else ""
            if not bearer or self.bearers.get(bearer) is None:
                await self.challenge(scope, send, bool(bearer))
                return
            await self.forward(scope, receive, send)
        except Unreachable:
            await respond(send, 502, b"The local image registry is not running: make local-up.\n", TEXT)
        except Refused as refused:
            await respond(send, refused.status, f"{refused}\n".encode(), TEXT)
        except ResponseStarted:
            pass
        except Exception as error:  # our bug: one line for the client, the traceback in the log, never a 500
            logger.exception("the image registry's door failed")
            message = f"The local image registry's door failed: {type(error).__name__}.\n".encode()
            await respond(send, 502, message, TEXT)

    async def challenge(self, scope: dict, send: Any, expired: bool) -> None:
        """401, and where to log in: Docker follows it with the login it stored, `snow` logs in first."""
        host = header(scope, b"host")
        realm = f'Bearer realm="https://{host}/login",service="{host}"'.encode()
        message = "This registry token is unknown or expired" if expired else "The registry needs a login"
        body = f"{message}: snow spcs image-registry login.\n".encode()
        await respond(send, 401, body, [*TEXT, (b"www-authenticate", realm)])

    async def login(self, scope: dict, send: Any) -> None:
        """A bearer token for a session token sent as Snowflake's registry takes it."""
        token = session_token(header(scope, b"authorization"))
        own = bool(token) and secrets.compare_digest(token.encode(), self.own_token.encode())
        user = "the local SPCS" if own else self.user_of(token)
        if user is None:
            raise Refused(401, f"Log in with {SESSION_USER} and a session token (snow spcs image-registry token).")
        bearer = secrets.token_urlsafe(32)
        self.bearers.add(bearer, user)
        body = json.dumps({"token": bearer, "expires_in": TOKEN_SECONDS}).encode()
        await respond(send, 200, body, [(b"content-type", b"application/json")])

    async def forward(self, scope: dict, receive: Any, send: Any) -> None:
        if self.client is None:
            timeout = httpx.Timeout(IDLE_SECONDS, connect=10.0)
            self.client = httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False)
        headers = [*headers_of(scope, lambda name: name != b"authorization"), (b"x-forwarded-proto", b"https")]
        query = f"?{scope['query_string'].decode('latin-1')}" if scope.get("query_string") else ""
        url = self.upstream + scope["raw_path"].decode("latin-1") + query
        await proxy.forward(self.client, scope, receive, send, url, headers, LAYER_BYTES, server="The image registry")

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()


def docker_login(token: str) -> dict[str, str]:
    """What Docker logs in to the registry with, for a session token: `snow spcs image-registry login`'s."""
    return {"username": SESSION_USER, "password": json.dumps({"token": token, "expires_in": TOKEN_SECONDS})}


def session_token(authorization: str) -> str:
    """The session token in `Basic base64(0sessiontoken:{"token": ...})`; "" when it is not that."""
    if not authorization.startswith("Basic "):
        return ""
    try:
        user, _, password = base64.b64decode(authorization[6:], validate=True).decode().partition(":")
        token = json.loads(password).get("token") if user == SESSION_USER else ""
    except (binascii.Error, UnicodeDecodeError, ValueError, AttributeError):
        return ""
    return token if isinstance(token, str) else ""
