"""The `stateset` command itself: help, the demo, and what a user who got something wrong sees: one line."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import STATESET, STEP, Launch, Running, child_env, free_port, launched

pytestmark = pytest.mark.e2e


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([STATESET, *args], env=env, capture_output=True, text=True, timeout=STEP)


def test_help_explains_every_command_and_option(tmp_path: Path) -> None:
    top = run("--help", env=child_env(tmp_path))
    assert top.returncode == 0 and "serve" in top.stdout and "demo" in top.stdout
    serve = run("serve", "--help", env=child_env(tmp_path))
    for option in ("--transport", "--host", "--port", "--home", "stdio", "http", "sse", "STATESET_TOKEN", "--no-auth"):
        assert option in serve.stdout


def test_the_demo_runs_the_procurement_agent_offline_and_checks_its_outcome(tmp_path: Path) -> None:
    result = run("demo", "--home", str(tmp_path / "demo"), env=child_env(tmp_path))
    assert result.returncode == 0, result.stderr
    for step in (
        "Ruled out: Budget Frames's reputation",
        "the CFO approved",
        "the controller co-signed the wallet proposal",
        "SAP: purchase order 4500000000 created",
        "reputation: rated Frame Works",
        "now at Negotiation/Review",
        "purchase order 4500000000 for 250 PC from Frame Works, paid 80 USDC",
    ):
        assert step in result.stdout
    assert (tmp_path / "demo" / "agents.db").exists() and (tmp_path / "demo" / "wallet.db").exists()


def test_the_wallet_tour_runs_offline_and_checks_its_own_outcome(tmp_path: Path) -> None:
    result = run("demo", "wallet", "--home", str(tmp_path / "demo"), env=child_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "refused: amount 150 USDC exceeds the per-transaction limit 100 USDC" in result.stdout
    assert "controller signed the proposal" in result.stdout
    assert "done: 1000 USDC in, 1000 USDC accounted for" in result.stdout
    assert (tmp_path / "demo" / "wallet.db").exists()


def test_a_bad_setting_stops_start_up_with_the_variable_named(tmp_path: Path) -> None:
    result = run("serve", "wallet", env=child_env(tmp_path, STATESET_GOVERNANCE_ADDRESS="0x1234"))
    assert result.returncode == 2
    assert "STATESET_GOVERNANCE_ADDRESS '0x1234' is not an Ethereum address" in result.stderr


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The whole of what the command printed on stderr, asserted to be one line."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


@pytest.mark.parametrize("command", [["up"], ["serve", "wallet", "--transport", "http"]])
def test_a_port_in_use_is_one_line_before_anything_is_created(tmp_path: Path, command: list[str]) -> None:
    home = tmp_path / "home"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(*command, "--port", str(port), "--home", str(home), env=child_env(home))
    assert result.returncode == 2
    assert one_line(result) == (
        f"stateset: port {port} on 127.0.0.1 is in use by another process; stop it, or choose another port with --port"
    )
    assert not home.exists()  # no keys, no databases made for nothing


def test_a_second_process_on_one_data_directory_is_refused_naming_the_first(tmp_path: Path) -> None:
    home = tmp_path / "home"
    up = Launch(
        [STATESET, "up", "--port", str(port := free_port()), "--home", str(home)],
        port=port,
        ready="/ready",
        env=child_env(home),
        log=tmp_path / "up.log",
        name="stateset up",
    )
    with launched(up) as (first,):
        second = run("up", "--port", str(free_port()), "--home", str(home), env=child_env(home))
        alone = run("serve", "governance", "--home", str(home), env=child_env(home))
    assert second.returncode == 2 and alone.returncode == 2
    for refused in (second, alone):
        line = one_line(refused)
        assert f"is in use by pid {first.process.pid} (stateset up --port {port} --home {home})" in line
        assert "give this one its own data directory (--home)" in line


def test_a_data_directory_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    home = tmp_path / "not-a-directory"
    home.write_text("")
    result = run("serve", "wallet", "--home", str(home), env=child_env(home))
    assert result.returncode == 2
    assert one_line(result) == f"stateset: the data directory {home} is a file; name a directory with --home"


@pytest.mark.parametrize("after", [0.3, 1.0, None])  # while importing, while keys and databases open, once serving
def test_ctrl_c_at_any_moment_ends_quietly(tmp_path: Path, after: float | None) -> None:
    home, port = tmp_path / "home", free_port()
    # A runner started in the background (`nohup .ci/run &`) passes SIGINT on ignored, and Python then keeps
    # ignoring it, as nohup means; a terminal's Ctrl-C reaches a process whose SIGINT is the default.
    with default_sigint():
        up = Running(
            Launch(
                [STATESET, "up", "--port", str(port), "--home", str(home)],
                port=port,
                ready="/ready",
                env=child_env(home),
                log=tmp_path / "up.log",
                name="stateset up",
            )
        )
    try:
        if after is None:
            up.wait_ready()
        else:
            time.sleep(after)
        up.process.send_signal(signal.SIGINT)
        code = up.process.wait(STEP)
    finally:
        up.stop()
    output = up.log.read_text()
    # -SIGINT: interrupted before Python had put its handler in place, which is as quiet as an exit
    assert code in (0, 130, -signal.SIGINT) and "Traceback" not in output and "ERROR" not in output, output


@contextlib.contextmanager
def default_sigint() -> Iterator[None]:
    """Children started in this block get SIGINT's default disposition (inherited across exec)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
