"""Who may talk to the local SPCS, and how much: Host names, peer addresses, content types, bounded bodies,
sessions that expire, and tickets for stage uploads. No SQL, no Docker.

- A request's `Host` must be a loopback name or address, or the name containers use (SNOWFLAKE_HOST):
  a web page whose name was rebound to 127.0.0.1 is refused (DNS rebinding).
- Its peer must be on an allowed network: loopback, or the local SPCS's own Docker network.
- Requests with a body that matters are JSON (`Content-Type: application/json`), which a web page can't send
  without a CORS preflight that the emulator never grants.
- Bodies are read up to a limit, before and after gzip, so a small compressed body can't fill the memory.
"""

import ipaddress
import secrets
import time
import zlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import jwt

Receive = Callable[[], Awaitable[dict]]
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
HEADER_BYTES = 64 * 2**10  # a request's line and headers
LOGIN_BODY_BYTES = 64 * 2**10  # a login or a token request, before any session
QUERY_BODY_BYTES = 16 * 2**20  # a statement with its bindings
UPLOAD_BYTES = 2**30  # one file PUT on a stage, streamed to disk
SQL_TEXT_BYTES = 2**20  # Snowflake refuses statements over 1 MB
SESSION_IDLE_SECONDS = 4 * 3600  # as Snowflake's sessions without keep-alive
MAX_SESSIONS = 1000
TICKET_SECONDS = 600
S = TypeVar("S")


class Refused(Exception):
    """A request refused before it is read further: its HTTP status and a one-line reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Doors:
    """Which names and peers the front answers."""

    hosts: frozenset[str] = frozenset(LOOPBACK_NAMES)
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = LOOPBACK

    def check(self, scope: dict) -> None:
        host = header(scope, b"host")
        name = host[1 : host.index("]")] if host.startswith("[") and "]" in host else host.rsplit(":", 1)[0]
        if name.lower() not in self.hosts:
            raise Refused(403, f"Host {name[:100]!r} is not a name of the local SPCS.")
        peer = (scope.get("client") or ("",))[0]
        try:
            allowed = any(ipaddress.ip_address(peer) in network for network in self.networks)
        except ValueError:
            allowed = False
        if not allowed:
            raise Refused(403, "Only this machine and the local SPCS's own containers may connect.")


def key_pair_ok(token: str, user: str, keys: dict[str, str]) -> bool:
    """Whether a key-pair login's JWT (as the connector makes one: RS256, `sub` ACCOUNT.USER, `iss` that and the
    key's fingerprint, a short `exp`) is signed by one of the user's keys (fingerprint -> PEM) and unexpired."""
    for key_fingerprint, pem in keys.items():
        try:
            claims = jwt.decode(token, pem, algorithms=["RS256"], options={"require": ["iss", "sub", "exp", "iat"]})
        except jwt.PyJWTError:
            continue
        subject = str(claims["sub"])
        if subject.rsplit(".", 1)[-1].upper() == user.upper() and claims["iss"] == f"{subject}.{key_fingerprint}":
            return True
    return False


def header(scope: dict, name: bytes) -> str:
    return dict(scope["headers"]).get(name, b"").decode("latin-1")


def require_json(scope: dict) -> None:
    """A body of JSON: no "simple" cross-site request (text/plain, a form) gets through."""
    if header(scope, b"content-type").split(";")[0].strip().lower() != "application/json":
        raise Refused(415, "Send the request as JSON (Content-Type: application/json).")


async def read_body(scope: dict, receive: Receive, limit: int) -> bytes:
    """The request body, gunzipped when the client compressed it; 413 when it is over `limit`, compressed or not."""
    gzipped = header(scope, b"content-encoding").lower() == "gzip"
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzipped else None
    chunks, size = [], 0
    async for chunk in body_chunks(scope, receive, limit):
        if inflate:
            chunk = inflate.decompress(chunk, limit + 1 - size)
            if inflate.unconsumed_tail:
                raise too_large(limit)
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    if inflate:
        try:
            chunks.append(inflate.flush())
        except zlib.error:
            raise Refused(400, "The gzip body is cut short.") from None
    return b"".join(chunks)


async def body_chunks(scope: dict, receive: Receive, limit: int) -> AsyncIterator[bytes]:
    """The body as it arrives, at most `limit` bytes of it on the wire: one that says it is longer is refused
    before any of it is read."""
    length = header(scope, b"content-length")
    if length.isdigit() and int(length) > limit:
        raise too_large(limit)
    received = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Refused(400, "The client went away.")
        chunk = message.get("body", b"")
        received += len(chunk)
        if received > limit:
            raise too_large(limit)
        yield chunk
        if not message.get("more_body"):
            return


def too_large(limit: int) -> Refused:
    return Refused(413, f"The request body is larger than the local SPCS takes ({limit // 2**10:,} KiB).")


@dataclass
class Entry(Generic[S]):
    value: S
    last_used: float = field(default_factory=time.monotonic)


class Sessions(Generic[S]):
    """Sessions by token: they expire after `idle` seconds unused, and at most `cap` are kept (the least
    recently used goes first). `on_end` is told of each one that ends, with its value."""

    def __init__(
        self, on_end: Callable[[str, S], None], idle: float = SESSION_IDLE_SECONDS, cap: int = MAX_SESSIONS
    ) -> None:
        self.on_end, self.idle, self.cap = on_end, idle, cap
        self.entries: OrderedDict[str, Entry[S]] = OrderedDict()

    def add(self, token: str, value: S) -> None:
        self.expire()
        while len(self.entries) >= self.cap:
            self.end(next(iter(self.entries)))
        self.entries[token] = Entry(value)

    def get(self, token: str) -> S | None:
        entry = self.entries.get(token)
        if entry is None:
            return None
        if time.monotonic() - entry.last_used > self.idle:
            self.end(token)
            return None
        entry.last_used = time.monotonic()
        self.entries.move_to_end(token)
        return entry.value

    def end(self, token: str) -> None:
        entry = self.entries.pop(token, None)
        if entry is not None:
            self.on_end(token, entry.value)

    def expire(self) -> None:
        now = time.monotonic()
        for token in [t for t, entry in self.entries.items() if now - entry.last_used > self.idle]:
            self.end(token)

    def __contains__(self, token: str) -> bool:
        return self.get(token) is not None

    def tokens(self) -> Iterable[str]:
        return list(self.entries)


@dataclass(frozen=True)
class Ticket:
    token: str  # the session that asked for the upload
    path: str  # where in the stages it may write
    expires: float


class Tickets:
    """Stage uploads go to the front over HTTP (as to a cloud's presigned URL): each PUT statement of a session
    gets a random ticket for its one path, so no upload comes without a session."""

    def __init__(self) -> None:
        self.tickets: dict[str, Ticket] = {}

    def issue(self, token: str, path: str) -> str:
        now = time.monotonic()
        for key in [k for k, t in self.tickets.items() if t.expires < now]:
            del self.tickets[key]
        ticket = secrets.token_urlsafe(24)
        self.tickets[ticket] = Ticket(token, path, now + TICKET_SECONDS)
        return ticket

    def check(self, ticket: str, path: str) -> str:
        """The session token the ticket was issued to; Refused if it is not a ticket for this path."""
        found = self.tickets.get(ticket)
        if found is None or found.path != path or found.expires < time.monotonic():
            raise Refused(403, "No upload ticket for this path: upload with PUT through a session.")
        return found.token
