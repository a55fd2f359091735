"""`make local-up` and `make local-down`: the local SPCS in the background, offline.

`up` starts the image registry (Debian's docker-registry, on a free port of its own) and the emulator with
the local SPCS, which serves the registry's HTTPS door on the registry port, each once per .local whatever the
ports asked for (a running one is found from its pidfile, which holds its PID and port), waits until both
answer, and writes the `local` connection for `snow`. `down`
stops both; the emulator removes every container and network it started. Pidfiles go to .local/run,
logs to .local/logs. Tables, stages, the catalog and pushed images stay in .local
until `make reset-local`.
"""

import argparse
import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from spcs_local.emulator import ACCOUNT, DATABASE, PASSWORD, ROLE, SCHEMA, USER, WAREHOUSE, client_env, registry
from spcs_local.emulator.docker_backend import DockerBackend
from spcs_local.emulator.server import instance_of
from spcs_local.processes import free_port

READY_SECONDS = 60
STOP_SECONDS = 20
# `snow` with the local connection: no version check on PyPI, no cloud platform probes.
CONFIG_TOML = """[cli]
ignore_new_version_warning = true
"""


@dataclass(frozen=True)
class Layout:
    """Where the local SPCS keeps its state, under LOCAL_DIR (.local)."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "snowflake"

    @property
    def snowflake_home(self) -> Path:
        return self.root / "snowflake-home"

    def pidfile(self, name: str) -> Path:
        return self.root / "run" / f"{name}.pid"

    def log(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"


def connections_toml(port: int) -> str:
    """The `local` connection: the tutorial's names, the emulator on 127.0.0.1, nothing probed beyond it."""
    values = {
        "account": ACCOUNT,
        "user": USER,
        "password": PASSWORD,
        "host": "127.0.0.1",
        "port": port,
        "protocol": "http",
        "database": DATABASE,
        "schema": SCHEMA,
        "warehouse": WAREHOUSE,
        "role": ROLE,
        "platform_detection_timeout_seconds": 0.0,
    }
    lines = [
        f"{key} = {value!r}" if not isinstance(value, str) else f'{key} = "{value}"' for key, value in values.items()
    ]
    return "[local]\n" + "\n".join(lines) + "\n"


def running(pidfile: Path, marker: str) -> tuple[int, int | None] | None:
    """The PID in the pidfile and the port it serves on, if that process still runs and is ours (PIDs get
    reused). Pidfiles of earlier versions hold no port."""
    try:
        pid, *port = (int(word) for word in pidfile.read_text().split()[:2])
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (OSError, ValueError):
        return None
    return (pid, port[0] if port else None) if marker in command else None


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return reply.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start(name: str, args: list[str], layout: Layout, ready_url: str, port: int) -> int:
    """Start a server in its own session (so that Ctrl-C in the shell doesn't reach it) and wait for it."""
    layout.pidfile(name).parent.mkdir(parents=True, exist_ok=True)
    layout.log(name).parent.mkdir(parents=True, exist_ok=True)
    with layout.log(name).open("a") as log:
        process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    layout.pidfile(name).write_text(f"{process.pid} {port}\n")
    deadline = time.monotonic() + READY_SECONDS
    while not answers(ready_url):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_pid(process.pid)
            layout.pidfile(name).unlink(missing_ok=True)
            tail = "\n".join(layout.log(name).read_text(errors="replace").splitlines()[-15:])
            raise RuntimeError(f"the {name} did not start; the end of {layout.log(name)}:\n{tail}")
        time.sleep(0.2)
    return process.pid


def stop_pid(pid: int, timeout: float = STOP_SECONDS) -> None:
    """SIGTERM, then SIGKILL if it is still there after `timeout`."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0]:
                    return
            os.kill(pid, 0)
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)


def up(layout: Layout, port: int, registry_port: int, brief: bool = False) -> None:
    """Start what is not running yet. `brief` (before a deploy target) says only what it started."""
    config = layout.root / "registry" / "config.yml"
    registry_started, upstream = ensure(
        "image registry", "docker-registry", layout, None, "/v2/",
        lambda port: registry_command(layout, config, port),
    )  # fmt: skip
    if registry_started:  # an emulator still running passes images on to the registry's port of before
        stop(layout, "emulator", "spcs_local.emulator")
    emulator = lambda port: [sys.executable, "-m", "spcs_local.emulator", "--port", str(port),  # noqa: E731
                             "--data-dir", str(layout.data), "--registry", f"127.0.0.1:{registry_port}",
                             "--registry-upstream", f"127.0.0.1:{upstream}"]  # fmt: skip
    started, port = ensure("Snowflake emulator", "spcs_local.emulator", layout, port, "/healthcheck", emulator)
    door = door_port(layout) or registry_port
    moved = f", not on {registry_port}: `make local-down` first to move it" if door != registry_port else ""
    print(f"the image registry's HTTPS door is 127.0.0.1:{door}, in the emulator{moved}")
    home = layout.snowflake_home
    home.mkdir(parents=True, exist_ok=True)
    for name, text in (("connections.toml", connections_toml(port)), ("config.toml", CONFIG_TOML)):
        file = home / name
        file.touch(mode=0o600)
        file.chmod(0o600)  # snow refuses a connections.toml others can read
        file.write_text(text)
    if brief and not (started or registry_started):
        return
    print("snow, with the `local` connection (make snow-cli installs it as .snow-venv/bin/snow):")
    for name, value in snow_env(layout).items():
        print(f"  export {name}={shlex.quote(value)}")
    print('  snow sql -q "SHOW SERVICES" -c local')
    print("an app outside a container, such as Tutorial 2's job (make run-job):")
    for name, value in client_env(port).items():
        print(f"  export {name}={shlex.quote(value)}")


def snow_env(layout: Layout) -> dict[str, str]:
    """What `snow` needs for the local SPCS: its `local` connection, and trust in the local CA, whose
    certificate the image registry's HTTPS door shows (the bundle keeps the usual roots too)."""
    return {
        "SNOWFLAKE_HOME": str(layout.snowflake_home.resolve()),
        "REQUESTS_CA_BUNDLE": str((layout.data / "spcs" / "tls" / "bundle.pem").resolve()),
    }


def door_port(layout: Layout) -> int | None:
    """Where the running emulator serves the registry's door: its --registry port."""
    found = running(layout.pidfile("emulator"), "spcs_local.emulator")
    if not found:
        return None
    arguments = Path(f"/proc/{found[0]}/cmdline").read_bytes().decode().split("\0")
    address = arguments[arguments.index("--registry") + 1] if "--registry" in arguments else ""
    return int(address.rsplit(":", 1)[1]) if ":" in address else None


def ensure(
    name: str, marker: str, layout: Layout, port: int | None, ready_path: str, args: Callable[[int], list[str]]
) -> tuple[bool, int]:
    """Start the server unless this .local's runs already, on whatever port (a free one when `port` is None);
    True when it was started, and the port it serves on."""
    key = name.split()[-1].lower()
    found = running(layout.pidfile(key), marker)
    if found:
        pid, running_port = found
        running_port = running_port or port or 0
        if not wait_until_it_answers(f"http://127.0.0.1:{running_port}{ready_path}"):
            raise RuntimeError(
                f"the {name} (pid {pid}) runs but doesn't answer on port {running_port}: make local-down"
            )
        moved = f", not on {port}: `make local-down` first to move it" if port and running_port != port else ""
        print(f"the {name} runs on 127.0.0.1:{running_port} (pid {pid}){moved}, log in {layout.log(key)}")
        return False, running_port
    port = port or free_port()
    pid = start(key, args(port), layout, f"http://127.0.0.1:{port}{ready_path}", port)
    print(f"started the {name} on 127.0.0.1:{port} (pid {pid}), log in {layout.log(key)}")
    return True, port


def wait_until_it_answers(url: str) -> bool:
    """A server that runs may still be starting (another `make` started it a moment ago)."""
    deadline = time.monotonic() + READY_SECONDS
    while not answers(url):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def registry_command(layout: Layout, config: Path, port: int) -> list[str]:
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(registry.config(layout.root / "registry" / "data", port))
    return registry.command(config)


def down(layout: Layout) -> None:
    for name, marker in (("emulator", "spcs_local.emulator"), ("registry", "docker-registry")):
        stop(layout, name, marker)
    # Containers left by an emulator that was killed (not stopped) go too.
    backend = DockerBackend.connect(instance_of(layout.data))
    if backend:
        backend.close()


def stop(layout: Layout, name: str, marker: str) -> None:
    pid = (running(layout.pidfile(name), marker) or (None,))[0]
    if pid:
        stop_pid(pid)
        print(f"stopped the {name} (pid {pid})")
    layout.pidfile(name).unlink(missing_ok=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Start or stop the local SPCS.")
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--local-dir", type=Path, default=Path(".local"))
    parser.add_argument("--port", type=int, default=8765, help="the emulator's port")
    parser.add_argument("--registry-port", type=int, default=5000)
    parser.add_argument("--brief", action="store_true", help="print only what was started")
    args = parser.parse_args(argv)
    layout = Layout(args.local_dir)
    try:
        if args.action == "up":
            up(layout, args.port, args.registry_port, args.brief)
        else:
            down(layout)
    except (RuntimeError, FileNotFoundError, OSError) as error:
        print(f"local SPCS: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
