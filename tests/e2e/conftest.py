"""Launch `stateset` as a separate process, the way an MCP host or an operator does."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
import pytest

STATESET = str(Path(sys.executable).parent / "stateset")


def child_env(home: Path, **extra: str) -> dict[str, str]:
    """What a host passes to the server: a minimal environment plus our settings."""
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    env |= {"STATESET_HOME": str(home), "STATESET_KEYSTORE_SCRYPT_N": "1024", "STATESET_LOG_LEVEL": "INFO"}
    return env | extra


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Served:
    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process, self.port, self.log = process, port, log

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, no flushing, as in a crash."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)


@contextmanager
def serving(
    home: Path,
    *args: str,
    env: dict[str, str] | None = None,
    ready: bool = True,
    server: str = "wallet",
    port: int | None = None,
) -> Iterator[Served]:
    """`stateset serve <server> --transport ...` on a loopback port (a free one unless given), stopped on exit."""
    port = port or free_port()
    log = home / f"server-{port}.log"
    home.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [STATESET, "serve", server, "--port", str(port), *args],
            env=env or child_env(home),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    served = Served(process, port, log)
    try:
        if ready:
            wait_healthy(served)
        yield served
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                served.kill()


def wait_healthy(served: Served, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            pytest.fail(f"server exited with {served.process.returncode}:\n{served.log.read_text()}")
        try:
            if httpx2.get(f"{served.base}/health", timeout=1).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        time.sleep(0.05)
    pytest.fail(f"server not healthy after {timeout} s:\n{served.log.read_text()}")
