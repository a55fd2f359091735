"""`make demo`, end to end, as a newcomer runs it."""

import os
import re
import signal
import subprocess
import sys

from .conftest import ROOT


def started_pids(output: str) -> list[int]:
    return [int(pid) for pid in re.findall(r"\(pid (\d+)\)", output)]


def is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_make_demo_runs_the_whole_flow_and_leaves_nothing_running(tmp_path) -> None:
    demo = subprocess.run(
        ["make", "-s", "demo", f"LOCAL_DIR={tmp_path}"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )

    assert demo.returncode == 0, demo.stdout + demo.stderr
    # Tutorial 1's query, through the emulator's batching, and the batch as the Echo service logged it.
    query = demo.stdout.split("> SELECT my_echo_udf(message_text) FROM messages;\n")[1]
    assert query.splitlines()[:7] == [
        "+---------------------------+",
        "| MY_ECHO_UDF(MESSAGE_TEXT) |",
        "+---------------------------+",
        "| Bob said Thank you        |",
        "| Bob said Hello            |",
        "| Bob said Hello World      |",
        "+---------------------------+",
    ]
    assert "] [INFO] Received 3 rows" in demo.stdout
    assert "Received response from" in demo.stdout and ": Bob said Hello" in demo.stdout
    assert "job-tutorial - INFO - Job finished" in demo.stdout
    results = demo.stdout.split("> SELECT * FROM results")[1]
    assert re.search(r"^\| \d\d:\d\d:\d\d\.\d+ +\| hello +\|$", results, re.M)
    pids = started_pids(demo.stdout)
    assert len(pids) == 2
    assert not any(is_running(pid) for pid in pids)


def test_an_interrupted_demo_stops_what_it_started(tmp_path) -> None:
    demo = subprocess.Popen(
        [sys.executable, "-m", "spcs_local.demo", "--local-dir", str(tmp_path)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    output = []
    try:
        for line in demo.stdout:  # type: ignore[union-attr]
            output.append(line)
            if "both are ready" in line:
                demo.send_signal(signal.SIGINT)
                break
        output.append(demo.communicate(timeout=60)[0])
    finally:
        demo.kill()

    assert demo.returncode == 130
    pids = started_pids("".join(output))
    assert len(pids) == 2
    assert not any(is_running(pid) for pid in pids)
