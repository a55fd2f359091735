"""`python -m spcs_local.emulator`: the emulator in the foreground, as `make demo` and the tests run it.

It prints the client environment as `export` lines and serves until SIGINT or SIGTERM. Data
persists under --data-dir. `make local-up` runs the same in the background, with --registry and
--registry-upstream: the local SPCS.
"""

import argparse
import errno
import shlex
import sys
from pathlib import Path

from spcs_local.emulator import client_env
from spcs_local.emulator.fakesnow_fixes import DataInUse
from spcs_local.emulator.server import parse_external_service, serve


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the embedded Snowflake emulator.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port to listen on (default 8765)")
    parser.add_argument("--data-dir", type=Path, default=Path(".local/snowflake"), help="where tables persist")
    parser.add_argument("--registry", help="host:port of the image registry: run SPCS services on Docker")
    parser.add_argument(
        "--registry-upstream",
        metavar="HOST:PORT",
        help="where the image registry runs when the emulator serves its HTTPS door at --registry",
    )
    parser.add_argument(
        "--external-service",
        action="append",
        default=[],
        type=parse_external_service,
        metavar="NAME:ENDPOINT=URL",
        help="a service running elsewhere, for service functions: echo_service:echoendpoint=http://...",
    )
    parser.add_argument("--poll-seconds", type=float, default=20.0, help=argparse.SUPPRESS)
    args = parser.parse_args()

    print("# The embedded Snowflake emulator. In another terminal, run these lines, then the job:")
    for name, value in client_env(args.port).items():
        print(f"export {name}={shlex.quote(value)}")
    print(flush=True)
    try:
        serve(
            args.host,
            args.port,
            args.data_dir,
            args.registry,
            args.poll_seconds,
            tuple(args.external_service),
            args.registry_upstream,
        )
    except DataInUse as error:
        sys.exit(f"Can't start the emulator: {error}")
    except OSError as error:
        if error.errno != errno.EADDRINUSE:
            raise
        sys.exit(f"Can't start the emulator: port {args.port} or the registry's is in use; give it another.")


if __name__ == "__main__":
    main()
