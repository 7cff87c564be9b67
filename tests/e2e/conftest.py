"""Launch `stateset` as a separate process, the way an MCP host or an operator does, and wait for it as they
would: until it says it serves.

Every wait of an e2e test has one deadline, `STEP`, that scales with STATESET_TEST_TIMEOUT_SCALE; a process that
exits first or misses it fails the test with the end of its log. Ports come from `free_port`, which no other
process can take meanwhile.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import pytest

from tests.helpers import TIMEOUT_SCALE, scaled

STATESET = str(Path(sys.executable).parent / "stateset")

# How long one step of an e2e test may take: a process getting ready (1-3 s on a quiet machine; a loaded 2-core one
# has taken over 30 s), a command finishing, one request. Only a hang comes near it: it turns one into a clear failure.
STEP = scaled(120)

LOG_TAIL = 40  # lines of a process's log shown when it fails


def child_env(home: Path, **extra: str) -> dict[str, str]:
    """What a host passes to the server: a minimal environment plus our settings."""
    passed = ("PATH", "HOME", "LANG", "XDG_CONFIG_HOME", "PYTHON_KEYRING_BACKEND")  # the last two: tests/conftest.py
    env = {key: os.environ[key] for key in passed if key in os.environ}
    env |= {"STATESET_HOME": str(home), "STATESET_KEYSTORE_SCRYPT_N": "1024", "STATESET_LOG_LEVEL": "INFO"}
    return env | extra


def free_port() -> int:
    """A loopback port that nothing else on this machine is handed while the tests run.

    Probing for a free port and closing the probe leaves a race: another process (or an outgoing connection) may
    take the port before our server binds it. So the probe stays bound here, with SO_REUSEADDR and not listening:
    the kernel hands the port to no other bind(0) or connect(), not even between a server's stop and its restart,
    while a server that sets SO_REUSEADDR too (uvicorn, anvil: every server we launch) can still listen on it.
    A server that checked its port with a plain bind (no SO_REUSEADDR) would find it taken; uvicorn's bind would not.
    """
    probe = socket.socket()
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    probe.bind(("127.0.0.1", 0))
    port = int(probe.getsockname()[1])
    atexit.register(probe.close)  # held until the tests end
    return port


@dataclass(frozen=True)
class Launch:
    """A command to run that serves on a loopback `port`, ready once GET `ready` (a path, sent with
    `ready_headers`) answers 200."""

    command: list[str]
    port: int
    ready: str
    env: dict[str, str]
    log: Path
    name: str
    ready_headers: dict[str, str] = field(default_factory=dict)


class Running:
    """A launched process, its stdout and stderr in its log file."""

    def __init__(self, launch: Launch) -> None:
        self.port, self.log, self.name = launch.port, launch.log, launch.name
        self.ready, self.ready_headers = f"{self.base}{launch.ready}", launch.ready_headers
        launch.log.parent.mkdir(parents=True, exist_ok=True)
        with launch.log.open("ab") as sink:  # a restart on the same port adds to the log of the first run
            self.process = subprocess.Popen(launch.command, env=launch.env, stdout=sink, stderr=subprocess.STDOUT)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tail(self) -> str:
        lines = self.log.read_text(errors="replace").splitlines()
        return "\n".join(lines[-LOG_TAIL:])

    def wait_ready(self) -> None:
        """Wait until the process says it serves. Fails the test, with the end of the process's log, if the
        process exits first or STEP passes."""
        __tracebackhide__ = True  # the failure says what went wrong; this loop is not the news
        deadline = time.monotonic() + STEP
        while (left := deadline - time.monotonic()) > 0:
            if self.process.poll() is not None:
                pytest.fail(f"{self.name} exited with {self.process.returncode} before it was ready:\n{self.tail()}")
            try:
                if httpx2.get(self.ready, headers=self.ready_headers, timeout=left).status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            time.sleep(0.05)
        pytest.fail(
            f"{self.name} was not ready ({self.ready}) within {STEP:g} s "
            f"(STATESET_TEST_TIMEOUT_SCALE={TIMEOUT_SCALE:g}):\n{self.tail()}"
        )

    def terminate(self) -> None:
        """SIGTERM, as a host or an operator stops it."""
        if self.process.poll() is None:
            self.process.terminate()

    def stop(self) -> None:
        """SIGTERM, and wait until it has gone: SIGKILL if it is still there after STEP."""
        self.terminate()
        try:
            self.process.wait(STEP)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, no flushing, as in a crash."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(STEP)


@contextmanager
def launched(*launches: Launch) -> Iterator[list[Running]]:
    """Start every launch at once and wait until each is ready; stop them all (at once) when the block exits."""
    running: list[Running] = []
    try:
        for launch in launches:
            running.append(Running(launch))
        for process in running:
            process.wait_ready()
        yield running
    finally:
        for process in running:
            process.terminate()
        for process in running:
            process.stop()


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh `stateset up` for a module's tests that only use it, each with wallets and agents of its own: its
    base URL, once every backend of its gateway is up (/ready)."""
    home, port = tmp_path_factory.mktemp("mesh"), free_port()
    up = Launch(
        # tokens are tried in test_http and test_auth; here every caller is the local operator
        [STATESET, "up", "--port", str(port), "--home", str(home), "--no-auth"],
        port=port,
        ready="/ready",
        env=child_env(home),
        log=home / "up.log",
        name="stateset up",
    )
    with launched(up) as (running,):
        yield running.base


def served(
    home: Path,
    *args: str,
    env: dict[str, str] | None = None,
    server: str = "wallet",
    port: int | None = None,
    auth: bool = False,
) -> Launch:
    """`stateset serve <server> --transport ...` on a loopback port (a free one unless given); without `auth`, over
    HTTP with `--no-auth` (every caller the local operator)."""
    port = port or free_port()
    open_to_all = [] if auth or "stdio" in args or "--transport" not in args else ["--no-auth"]
    return Launch(
        [STATESET, "serve", server, "--port", str(port), *args, *open_to_all],
        port=port,
        ready="/health",
        env=env or child_env(home),
        log=home / f"server-{port}.log",
        name=f"stateset serve {server}",
    )


@contextmanager
def serving(
    home: Path,
    *args: str,
    env: dict[str, str] | None = None,
    server: str = "wallet",
    port: int | None = None,
    auth: bool = False,
) -> Iterator[Running]:
    """`stateset serve <server> --transport ...` until the block exits, from when it is ready."""
    with launched(served(home, *args, env=env, server=server, port=port, auth=auth)) as (running,):
        yield running


def issue_token(home: Path, subject: str, scopes: str, *, audience: str = "stateset-mesh") -> tuple[str, str]:
    """`stateset token issue` for the data directory `home`: the token and its id."""
    result = subprocess.run(
        [STATESET, "token", "issue", "--subject", subject, "--scopes", scopes, "--audience", audience],
        env=child_env(home),
        capture_output=True,
        text=True,
        timeout=STEP,
    )
    assert result.returncode == 0, result.stderr
    said = next(line for line in result.stderr.splitlines() if line.startswith("token "))
    return result.stdout.strip(), said.split()[1]
