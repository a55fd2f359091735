"""The yardstick: a bare asyncio + uvloop HTTP/1.1 echo near this machine's limit.

No framework and no checks, only enough HTTP for wrk: Content-Length bodies and keep-alive.
One process per CPU, sharing the port with SO_REUSEPORT.
"""

import asyncio
import multiprocessing
import os
import signal
import socket
import sys

import orjson
import uvloop

CHARACTER_NAME = os.getenv("CHARACTER_NAME", "I")
HEADER_END = b"\r\n\r\n"


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(HEADER_END)) >= 0:
            length = content_length(self.buffer[:end])
            if len(self.buffer) < end + 4 + length:
                return
            body, self.buffer = self.buffer[end + 4 : end + 4 + length], self.buffer[end + 4 + length :]
            rows = orjson.loads(body)["data"] if length else []
            reply = orjson.dumps({"data": [[row[0], f"{CHARACTER_NAME} said {row[1]}"] for row in rows]})
            self.transport.write(  # type: ignore[attr-defined]
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                % (len(reply), reply)
            )


def content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def serve(sock: socket.socket) -> None:
    uvloop.run(serve_forever(sock))


async def serve_forever(sock: socket.socket) -> None:
    server = await asyncio.get_running_loop().create_server(EchoProtocol, sock=sock)
    await server.serve_forever()


def main() -> None:
    port = int(os.getenv("SERVER_PORT", "8080"))
    workers = []
    for _ in range(len(os.sched_getaffinity(0))):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(1024)
        workers.append(multiprocessing.Process(target=serve, args=(sock,), daemon=True))
    for worker in workers:
        worker.start()
    # Exiting on SIGTERM lets multiprocessing stop the daemon workers too (set after the fork).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    for worker in workers:
        worker.join()


if __name__ == "__main__":
    main()
