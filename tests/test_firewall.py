"""The firewall each instance's guard sets (guard_scripts.FIREWALL), run here by the host's own shell with
`iptables-restore` replaced by a stand-in that keeps the rules it is given: what is open, and nothing else."""

import os
import subprocess
from pathlib import Path

import pytest

from spcs_local.emulator.guard_scripts import FIREWALL

FRONT, RESOLVER = "172.21.0.1", "10.255.255.53"
SCHEMA, HOST = "172.22.0.0/16 172.23.0.0/16", "172.22.0.1 172.23.0.1"  # the schema's networks: its own, its names
GATES = "61000:8000 61001:9000"  # the gates of ports 8000 and 9000
IN = [
    "-A INPUT -i lo -j ACCEPT",
    "-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
    "-A INPUT -p tcp --dport 61000 -j ACCEPT",
    "-A INPUT -p tcp --dport 61001 -j ACCEPT",
    "-A INPUT -s 172.22.0.1 -p tcp -j REJECT --reject-with tcp-reset",
    "-A INPUT -s 172.22.0.1 -j DROP",
    "-A INPUT -s 172.23.0.1 -p tcp -j REJECT --reject-with tcp-reset",
    "-A INPUT -s 172.23.0.1 -j DROP",
    "-A INPUT -s 172.22.0.0/16 -j ACCEPT",
    "-A INPUT -s 172.23.0.0/16 -j ACCEPT",
    "-A INPUT -p tcp -j REJECT --reject-with tcp-reset",
    "-A INPUT -j DROP",
]
CLOSED = [
    *IN,
    "-A OUTPUT -o lo -j ACCEPT",
    "-A OUTPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
    f"-A OUTPUT -p tcp -d {FRONT} --dport 8765 -j ACCEPT",
    "-A OUTPUT -d 172.22.0.0/16 -j ACCEPT",
    "-A OUTPUT -d 172.23.0.0/16 -j ACCEPT",
    f"-A OUTPUT -p udp -d {RESOLVER} --dport 53 -j ACCEPT",
    f"-A OUTPUT -p tcp -d {RESOLVER} --dport 53 -j ACCEPT",
]
REFUSE_THE_REST = ["-A OUTPUT -p tcp -j REJECT --reject-with tcp-reset", "-A OUTPUT -j REJECT"]


def firewall(tmp_path: Path, *egress: str) -> list[str]:
    """The rules the guard would load for this egress."""
    stand_in = tmp_path / "iptables-restore"
    stand_in.write_text(f"#!/bin/sh\ncat > {tmp_path / 'rules'}\n")
    stand_in.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    subprocess.run(["sh", "-c", FIREWALL, "guard", FRONT, "443", "8765", SCHEMA, RESOLVER, HOST, GATES, *egress],
                   env=env, check=True, timeout=30)  # fmt: skip
    lines = (tmp_path / "rules").read_text().splitlines()
    assert lines[0] == "*filter" and lines[-1] == "COMMIT"  # the whole table, loaded in one step
    return [line for line in lines if line.startswith("-A")]


def test_closed_by_default_the_front_the_schema_and_the_resolvers_only(tmp_path: Path) -> None:
    assert firewall(tmp_path) == CLOSED + REFUSE_THE_REST


def test_only_the_gates_and_the_schemas_instances_come_in_never_this_machine(tmp_path: Path) -> None:
    rules = [rule for rule in firewall(tmp_path) if rule.startswith("-A INPUT")]

    assert rules == IN  # the host's address on the schema's network is dropped before the schema is let in


def test_an_integration_opens_its_hosts_addresses_on_its_port(tmp_path: Path) -> None:
    rules = firewall(tmp_path, "localhost:8443", "10.1.2.3:443")

    assert rules == [
        *CLOSED,
        "-A OUTPUT -p tcp -d 127.0.0.1 --dport 8443 -j ACCEPT",  # localhost, as the container resolves it
        "-A OUTPUT -p tcp -d 10.1.2.3 --dport 443 -j ACCEPT",
        *REFUSE_THE_REST,
    ]


def test_a_wildcard_or_every_host_opens_the_port_alone(tmp_path: Path) -> None:
    rules = firewall(tmp_path, "*.example.com:443", "0.0.0.0:80")

    assert rules[len(CLOSED) : -2] == [
        "-A OUTPUT -p tcp --dport 443 -j ACCEPT",
        "-A OUTPUT -p tcp --dport 80 -j ACCEPT",
    ]


@pytest.mark.parametrize("value", ["x;touch /tmp/owned:443", "$(id):443", "a b:443", "-j ACCEPT:1", "x\n-A:1"])
def test_a_value_that_is_not_a_host_and_port_opens_nothing(tmp_path: Path, value: str) -> None:
    assert firewall(tmp_path, value) == CLOSED + REFUSE_THE_REST
