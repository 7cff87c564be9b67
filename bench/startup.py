"""Start-up: what a host waits for when it launches `stateset`, measured side by side in one run.

    python bench/startup.py [--rounds 15]

Each round runs every case once, in turn, so a busy machine slows them alike. A case is a fresh process:

    floor        python -c "import argparse"
    --help       stateset --help
    claude       stateset claude-config
    trivial      an MCPServer with one tool, over stdio, until it answers `initialize`
    wallet       stateset serve wallet over stdio (a fresh data directory each round), until it answers

For the servers the clock stops at the `initialize` answer and the process is then killed, so shutdown is
not counted. CPU is the child's user + system time (wait4), which a loaded machine disturbs less than the
wall clock; both are printed as medians, with each case's ratio to its floor: the argparse start for the
command line, the trivial server for `serve wallet`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

STATESET = str(Path(sys.executable).parent / "stateset")
TRIVIAL = """
from mcp.server.mcpserver import MCPServer

server = MCPServer("trivial")


@server.tool()
def echo(text: str) -> str:
    return text


server.run()
"""
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "bench", "version": "0"},
    },
}


def command(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of a command run to its end, output discarded."""
    began = time.perf_counter()
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(args)} exited with {process.returncode}")
    return time.perf_counter() - began, usage.ru_utime + usage.ru_stime


def initialized(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) from launch until the server answers `initialize` over stdio."""
    began = time.perf_counter()
    process = subprocess.Popen(args, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write((json.dumps(INITIALIZE) + "\n").encode())
    process.stdin.flush()
    answer = json.loads(process.stdout.readline() or b"null")
    elapsed = time.perf_counter() - began
    process.send_signal(signal.SIGKILL)
    _, _, usage = os.wait4(process.pid, 0)
    process.returncode = -9
    if not answer or "result" not in answer:
        raise SystemExit(f"{' '.join(args)} did not answer initialize: {answer}")
    return elapsed, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    rounds = parser.parse_args().rounds
    env = {key: value for key, value in os.environ.items() if not key.startswith("STATESET_")}
    env |= {"STATESET_LOG_LEVEL": "WARNING", "STATESET_KEYSTORE_SCRYPT_N": "1024"}
    samples: dict[str, list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="stateset-startup-") as scratch:
        cases: dict[str, Callable[[int], tuple[float, float]]] = {
            "floor: python -c 'import argparse'": lambda _: command([sys.executable, "-c", "import argparse"], env),
            "stateset --help": lambda _: command([STATESET, "--help"], env),
            "stateset claude-config": lambda n: command([STATESET, "claude-config", "--home", f"{scratch}/c{n}"], env),
            "floor: trivial MCPServer, initialize": lambda _: initialized([sys.executable, "-c", TRIVIAL], env),
            "stateset serve wallet, initialize": lambda n: initialized(
                [STATESET, "serve", "wallet", "--home", f"{scratch}/w{n}"], env
            ),
        }
        for case in cases:  # one warm-up each: the first run pays for cold file caches
            cases[case](-1)
        for n in range(rounds):
            for case, run in cases.items():
                samples.setdefault(case, []).append(run(n))
    medians = {
        case: (statistics.median(s[0] for s in runs), statistics.median(s[1] for s in runs))
        for case, runs in samples.items()
    }
    floors = {
        "stateset --help": "floor: python -c 'import argparse'",
        "stateset claude-config": "floor: python -c 'import argparse'",
        "stateset serve wallet, initialize": "floor: trivial MCPServer, initialize",
    }
    print(f"{rounds} rounds, medians; ratios against the floor measured in the same rounds")
    print(f"{'case':<40} {'wall ms':>8} {'CPU ms':>8} {'CPU ratio':>10} {'wall ratio':>10}")
    for case, (wall, cpu) in medians.items():
        ratio = ""
        if case in floors:
            floor_wall, floor_cpu = medians[floors[case]]
            ratio = f"{cpu / floor_cpu:>10.2f} {wall / floor_wall:>10.2f}"
        print(f"{case:<40} {wall * 1000:>8.1f} {cpu * 1000:>8.1f} {ratio}")


if __name__ == "__main__":
    main()
