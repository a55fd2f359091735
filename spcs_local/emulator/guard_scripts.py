"""What runs in the guard container that holds each instance's network namespace: its image, its firewall
and its gates, given to Docker as text by `docker_backend`, which knows when to run them."""

import contextlib
import itertools
import re
from pathlib import Path

# The guard's image: iptables on the Dockerfiles' base, built on first use.
GUARD_DOCKERFILE = b"""FROM python:3.11-slim-bookworm
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iptables \\
    && rm -rf /var/lib/apt/lists/*
"""
# The firewall of a workload's network namespace, on its arguments: the front's address, SNOWFLAKE_PORT and
# the port it goes to, the schema's networks' subnets, the resolvers Docker's DNS asks for other names (it asks
# from the container's namespace), the host's addresses on the schema's networks, the gates (gate:port, see
# GATE), then each host:port allowed. The filter table is replaced whole, at once (iptables-restore), so that
# a change never leaves a moment open. In: the gates, and the schema's other instances; not this machine
# (the host is on every Docker network), nor another schema's instances on the front network.
FIREWALL = """set -eu
front=$1 snowflake=$2 port=$3 schema=$4 resolvers=$5 host=$6 gates=$7
shift 7
rules() {
  printf '*filter\\n:INPUT ACCEPT [0:0]\\n:FORWARD ACCEPT [0:0]\\n:OUTPUT ACCEPT [0:0]\\n'
  echo "-A INPUT -i lo -j ACCEPT"
  echo "-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT"
  for gate in $gates; do
    echo "-A INPUT -p tcp --dport ${gate%%:*} -j ACCEPT"
  done
  for address in $host; do
    echo "-A INPUT -s $address -p tcp -j REJECT --reject-with tcp-reset"
    echo "-A INPUT -s $address -j DROP"
  done
  for subnet in $schema; do
    echo "-A INPUT -s $subnet -j ACCEPT"
  done
  echo "-A INPUT -p tcp -j REJECT --reject-with tcp-reset"
  echo "-A INPUT -j DROP"
  echo "-A OUTPUT -o lo -j ACCEPT"
  echo "-A OUTPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT"
  echo "-A OUTPUT -p tcp -d $front --dport $port -j ACCEPT"
  for subnet in $schema; do
    echo "-A OUTPUT -d $subnet -j ACCEPT"
  done
  for resolver in $resolvers; do
    echo "-A OUTPUT -p udp -d $resolver --dport 53 -j ACCEPT"
    echo "-A OUTPUT -p tcp -d $resolver --dport 53 -j ACCEPT"
  done
  for allowed in "$@"; do
    case $allowed in *[!A-Za-z0-9.:*-]*) continue ;; esac
    host=${allowed%:*} to=${allowed##*:}
    case $host in
      0.0.0.0|\\*.*) echo "-A OUTPUT -p tcp --dport $to -j ACCEPT" ;;
      *) getent ahostsv4 "$host" | while read -r address kind _; do
           if [ "$kind" = STREAM ]; then echo "-A OUTPUT -p tcp -d $address --dport $to -j ACCEPT"; fi
         done ;;
    esac
  done
  echo "-A OUTPUT -p tcp -j REJECT --reject-with tcp-reset"
  echo "-A OUTPUT -j REJECT"
  echo "COMMIT"
}
rules "$@" | iptables-restore -w
"""
# The guard: the firewall, SNOWFLAKE_HOST:443 to the front, no IPv6; then the gates, which say `ready` and
# hold the namespace.
GUARD_SCRIPT = (
    FIREWALL
    + """
iptables -w -t nat -A OUTPUT -p tcp -d "$front" --dport "$snowflake" -j DNAT --to-destination "$front:$port"
if ip6tables -w -A INPUT -i lo -j ACCEPT 2>/dev/null; then ip6tables -w -A INPUT -j DROP; fi
if ip6tables -w -A OUTPUT -o lo -j ACCEPT 2>/dev/null; then ip6tables -w -A OUTPUT -j REJECT; fi
exec python3 /gate/gate.py $gates
"""
)
# The gates: how the local SPCS reaches an instance's ports, published on 127.0.0.1. Each gate is a TLS port
# that asks for a certificate of the local CA, which the local SPCS alone holds (tls.gate_context), and passes
# the connection on to its port inside the namespace: no other program on this machine gets through, and the
# ports themselves are closed to it (FIREWALL). Bytes pass as they come, a bounded buffer at a time.
GATE = b"""import asyncio, os, ssl, sys

HERE = os.path.dirname(os.path.abspath(__file__))  # with its certificate and the CA's

async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()

def gate(port):
    async def serve(reader, writer):
        try:
            inner_reader, inner_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, inner_writer), pipe(inner_reader, writer), return_exceptions=True)
    return serve

async def main(gates):
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: None)  # a stranger's handshake
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=os.path.join(HERE, "ca.pem"))
    context.load_cert_chain(os.path.join(HERE, "gate.pem"), os.path.join(HERE, "gate-key.pem"))
    context.verify_mode = ssl.CERT_REQUIRED
    for pair in gates:
        outer, inner = (int(number) for number in pair.split(":"))
        await asyncio.start_server(gate(inner), "0.0.0.0", outer, ssl=context, ssl_handshake_timeout=10)
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main(sys.argv[1:]))
"""
GATES_FROM = 61000  # the first gate's port inside the namespace; a port of the spec's own is passed over


def gates_for(ports: tuple[int, ...]) -> dict[int, int]:
    """A gate for each port, on ports of the namespace the spec doesn't use."""
    free = (gate for gate in itertools.count(GATES_FROM) if gate not in ports)
    return {port: next(free) for port in sorted(ports)}


def resolvers() -> list[str]:
    """The DNS servers Docker's embedded DNS forwards other names to, found as Docker finds them: the host's
    resolv.conf without loopback addresses (systemd-resolved's own file when that leaves none), else Google's."""
    for file in ("/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"):
        with contextlib.suppress(OSError):
            found = re.findall(r"^\s*nameserver\s+([0-9.]+)\s*$", Path(file).read_text(), re.MULTILINE)
            found = [address for address in found if not address.startswith("127.")]
            if found:
                return found
    return ["8.8.8.8", "8.8.4.4"]
