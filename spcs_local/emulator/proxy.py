"""Passing a request on to a server behind the local SPCS, streamed both ways: httpx on that side, ASGI on
ours. The ingress uses it for the services' public endpoints, the registry's door for Debian's registry.
"""

from collections.abc import Callable, Sequence
from typing import Any

import httpx

from spcs_local.emulator.guard import Refused, body_chunks

HOP_BY_HOP = {b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te", b"trailer",
              b"transfer-encoding", b"upgrade", b"host"}  # fmt: skip


class ResponseStarted(Exception):
    """The server's answer broke off after its start was sent on: nothing more can be said to the client."""


class Unreachable(Exception):
    """The server refused the connection: nothing of the request was sent."""


def headers_of(scope: dict, kept: Callable[[bytes], bool] = lambda name: True) -> list[tuple[bytes, bytes]]:
    """The client's headers that go on: never the hop-by-hop ones, and only those `kept` says."""
    return [(name, value) for name, value in scope["headers"] if name.lower() not in HOP_BY_HOP and kept(name.lower())]


async def forward(
    client: httpx.AsyncClient, scope: dict, receive: Any, send: Any, url: str, headers: list[tuple[bytes, bytes]],
    body_limit: int, added: Sequence[tuple[bytes, bytes]] = (), server: str = "The service",
) -> None:  # fmt: skip
    """The request to `url` with `headers`, its body at most `body_limit` bytes; the answer back with `added`."""
    request = client.build_request(scope["method"], url, headers=headers,
                                   content=body_chunks(scope, receive, body_limit))  # fmt: skip
    try:
        reply = await client.send(request, stream=True)
    except httpx.ConnectError:
        raise Unreachable from None
    except httpx.HTTPError as error:
        raise Refused(502, f"{server} did not answer: {type(error).__name__}.") from None
    try:
        kept = [(n, v) for n, v in reply.headers.raw if n.lower() not in HOP_BY_HOP]
        await send({"type": "http.response.start", "status": reply.status_code, "headers": kept + list(added)})
        try:
            async for chunk in reply.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except httpx.HTTPError:
            raise ResponseStarted from None
        await send({"type": "http.response.body", "body": b""})
    finally:
        await reply.aclose()


async def respond(send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    length = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + length})
    await send({"type": "http.response.body", "body": body})
