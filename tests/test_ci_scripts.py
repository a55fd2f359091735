"""CI's own scripts: `.ci/docker-engine stop` after what a test run leaves behind."""

import os
import subprocess
from pathlib import Path

import pytest

from .conftest import ROOT

ENGINE = ROOT / ".ci" / "docker-engine"


@pytest.mark.skipif(os.geteuid() != 0, reason="making a network namespace mount, as dockerd does, needs root")
def test_stop_removes_the_engines_state_after_a_host_network_container_and_says_what_it_deletes(
    tmp_path: Path,
) -> None:
    state = tmp_path / "docker-state"
    netns = state / "exec" / "netns" / "f00d"  # dockerd keeps each network namespace as such a mount
    netns.parent.mkdir(parents=True)
    netns.touch()
    subprocess.run(["mount", "--bind", "/proc/self/ns/net", str(netns)], check=True)
    # A process that stands in for dockerd, not this one's child (a child would linger as a zombie).
    engine = subprocess.run(["sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $!"], capture_output=True, text=True)
    (state / "dockerd.pid").write_text(engine.stdout.strip())
    try:
        stop = subprocess.run([str(ENGINE), "stop"], env={**os.environ, "SPCS_DOCKER_STATE": str(state)},
                              capture_output=True, text=True, timeout=60)  # fmt: skip
    finally:
        subprocess.run(["kill", engine.stdout.strip()], capture_output=True)
        subprocess.run(["umount", str(netns)], capture_output=True)

    assert stop.returncode == 0, stop.stderr
    assert not state.exists()
    assert f"deleted {state}: every image, container and volume of that engine" in stop.stdout
