"""`make demo`, end to end, as a newcomer runs it."""

import os
import re
import signal
import subprocess
import sys

import pytest

from spcs_local.processes import free_port

from .conftest import ROOT, start_emulator


def started_pids(output: str) -> list[int]:
    return [int(pid) for pid in re.findall(r"\(pid (\d+)\)", output)]


def is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_make_demo_runs_the_whole_flow_and_leaves_nothing_running(tmp_path) -> None:
    # `make local-up` keeps its data in LOCAL_DIR/snowflake, the demo in LOCAL_DIR/demo: both can run.
    with start_emulator(free_port(), tmp_path / "snowflake"):
        demo = make_demo(tmp_path)

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


@pytest.mark.parametrize(
    ("sigint", "when"),
    [
        ("inherited", "both are ready"),
        ("ignored", "both are ready"),
        ("inherited", "job-tutorial - INFO - Job started"),
    ],
    ids=["while-starting", "started-with-sigint-ignored", "while-the-job-runs"],
)
def test_ctrl_c_stops_the_demo_and_what_it_started(tmp_path, sigint: str, when: str) -> None:
    # A background job (`make test &`, nohup, CI) starts with SIGINT ignored; Ctrl-C must stop the demo anyway.
    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint == "ignored" else None
    demo = subprocess.Popen(
        [sys.executable, "-m", "spcs_local.demo", "--local-dir", str(tmp_path)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        preexec_fn=ignore,
    )  # fmt: skip
    output = []
    try:
        for line in demo.stdout:  # type: ignore[union-attr]
            output.append(line)
            if when in line:
                os.killpg(demo.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the demo and all it runs
                break
        output.append(demo.communicate(timeout=60)[0])
    finally:
        demo.kill()

    assert demo.returncode == 130
    assert "Demo stopped" in output[-1] and "Demo failed" not in output[-1], "".join(output)
    pids = started_pids("".join(output))
    assert len(pids) == 2
    assert not any(is_running(pid) for pid in pids)


def test_the_demo_says_when_another_emulator_holds_its_data(tmp_path) -> None:
    with start_emulator(free_port(), tmp_path / "demo" / "snowflake") as holder:  # another demo's emulator, say
        demo = make_demo(tmp_path)
    assert demo.returncode != 0
    assert f"is in use by another emulator (PID {holder.pid}): stop it (make local-down)" in demo.stderr


def make_demo(local_dir) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-s", "demo", f"LOCAL_DIR={local_dir}"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
