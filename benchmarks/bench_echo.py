"""`make bench`, Echo part: the tutorial's Flask server (baseline), a FastAPI peer, our service and a
yardstick, side by side.

Each server runs on a free loopback port with one worker, pinned to CPU 0 as on the tutorial's
CPU_X64_XS pool node, and wrk (bounded by -d) runs on CPU 1. wrk loads each server in turn, batch size
by batch size, for five rounds. Medians over rounds are printed, then ours' ratio to each peer in each round:
its median, and its lowest to FastAPI.
Goals at 100-row batches: >= 5x the tutorial's Flask server and >= 2x FastAPI.
"""

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from contextlib import ExitStack
from pathlib import Path

from spcs_local.processes import free_port, running

ROOT = Path(__file__).resolve().parent.parent
BATCH_SIZES = (1, 100, 1000)
CONNECTIONS = 32
ROUNDS = int(os.getenv("BENCH_ROUNDS", "5"))
SECONDS = int(os.getenv("BENCH_SECONDS", "3"))
SERVERS = {
    "baseline": [sys.executable, str(ROOT / "benchmarks" / "flask_baseline.py")],
    "fastapi": [sys.executable, str(ROOT / "benchmarks" / "fastapi_peer.py")],
    "ours": [sys.executable, str(ROOT / "echo-service" / "echo_service.py")],
    "yardstick": [sys.executable, str(ROOT / "benchmarks" / "yardstick.py")],
}
READY_PATH = {"baseline": "/healthcheck", "fastapi": "/healthcheck", "ours": "/healthcheck", "yardstick": "/"}
# A server on one CPU, the load on the other, when there are two.
TWO_CPUS = len(os.sched_getaffinity(0)) >= 2
SERVER_CPU, LOAD_CPU = (["taskset", "-c", "0"], ["taskset", "-c", "1"]) if TWO_CPUS else ([], [])
WRK_SCRIPT = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = io.open("{body}"):read("*a")
"""
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def batch(rows: int) -> dict:
    return {"data": [[i, f"hello {i}"] for i in range(rows)]}


def check_echo(url: str, rows: int) -> None:
    """Each server must give the same answer before its numbers count."""
    request = urllib.request.Request(url, json.dumps(batch(rows)).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        data = json.load(reply)["data"]
    assert data == [[i, f"Bob said hello {i}"] for i in range(rows)], f"{url} gave a wrong answer"


def wrk_script(directory: str, rows: int) -> Path:
    """A wrk script that POSTs one batch of `rows` rows."""
    body = Path(directory, f"body-{rows}.json")
    body.write_text(json.dumps(batch(rows)))
    script = Path(directory, f"post-{rows}.lua")
    script.write_text(WRK_SCRIPT.format(body=body))
    return script


def start_server(stack: ExitStack, args: list[str], ready_path: str) -> int:
    """A server on a free port, one worker, pinned to its CPU; returns its port."""
    port = free_port()
    env = {"SERVER_HOST": "127.0.0.1", "SERVER_PORT": str(port), "CHARACTER_NAME": "Bob", "SERVER_WORKERS": "1"}
    stack.enter_context(running([*SERVER_CPU, *args], f"http://127.0.0.1:{port}{ready_path}", env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))  # fmt: skip
    return port


def wrk(url: str, script: Path) -> dict[str, float]:
    out = subprocess.run(
        [*LOAD_CPU, "wrk", "-t1", f"-c{CONNECTIONS}", f"-d{SECONDS}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
        timeout=SECONDS + 30,
    ).stdout
    if re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        raise RuntimeError(f"{url} answered with errors under load:\n{out}")

    def latency(percent: str) -> float:
        value, unit = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)$", out, re.M).groups()  # type: ignore[union-attr]
        return float(value) * UNITS[unit]

    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": latency("50"),
        "p99": latency("99"),
    }  # type: ignore[union-attr]


def main() -> None:
    results: dict[tuple[str, int], list[dict[str, float]]] = {}
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        urls = {}
        for name, args in SERVERS.items():
            urls[name] = f"http://127.0.0.1:{start_server(stack, args, READY_PATH[name])}/echo"
            check_echo(urls[name], 3)
        scripts = {rows: wrk_script(tmp, rows) for rows in BATCH_SIZES}
        pinned = "servers on CPU 0, wrk on CPU 1" if TWO_CPUS else "one CPU: not pinned"
        print(f"wrk -t1 -c{CONNECTIONS} -d{SECONDS}s, one worker a server, {pinned}, {ROUNDS} rounds, medians; "
              "servers take turns", flush=True)  # fmt: skip
        for round_number in range(ROUNDS):
            for rows in BATCH_SIZES:
                for name, url in urls.items():
                    results.setdefault((name, rows), []).append(wrk(url, scripts[rows]))
            print(f"  round {round_number + 1}/{ROUNDS} done", flush=True)
    report(results)


def report(results: dict[tuple[str, int], list[dict[str, float]]]) -> None:
    medians = {
        key: {stat: statistics.median(run[stat] for run in runs) for stat in ("rps", "p50", "p99")}
        for key, runs in results.items()
    }
    print(f"\n{'rows':>5} {'server':<10} {'req/s':>9} {'rows/s':>11} {'p50 ms':>7} {'p99 ms':>7}")
    for rows in BATCH_SIZES:
        for name in SERVERS:
            m = medians[(name, rows)]
            print(f"{rows:>5} {name:<10} {m['rps']:>9.0f} {m['rps'] * rows:>11.0f} {m['p50']:>7.2f} {m['p99']:>7.2f}")
    # The servers take turns within a round: each round's ratio compares runs made side by side.
    print(f"\n{'rows':>5} {'ours/baseline':>14} {'ours/fastapi':>13} {'min':>6} {'ours/yardstick':>15}")
    for rows in BATCH_SIZES:
        ours = [run["rps"] for run in results[("ours", rows)]]
        to_baseline = [o / run["rps"] for o, run in zip(ours, results[("baseline", rows)], strict=True)]
        to_fastapi = [o / run["rps"] for o, run in zip(ours, results[("fastapi", rows)], strict=True)]
        to_yardstick = [o / run["rps"] for o, run in zip(ours, results[("yardstick", rows)], strict=True)]
        print(f"{rows:>5} {statistics.median(to_baseline):>13.1f}x {statistics.median(to_fastapi):>12.1f}x "
              f"{min(to_fastapi):>5.1f}x {statistics.median(to_yardstick):>14.0%}")  # fmt: skip
    print(
        f"medians of the {ROUNDS} rounds' ratios, and the lowest to FastAPI; goals at 100 rows: ours/baseline "
        ">= 5x, ours/fastapi >= 2x in every round"
    )


if __name__ == "__main__":
    main()
