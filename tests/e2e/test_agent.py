"""The agent as operators and hosts run it: `stateset agent run` against a running `stateset up` (with a token the
operator issued for it, or sharing that mesh's data directory and so its authority), and `stateset agent serve`
launched over stdio by a host."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from mcp import Client, StdioServerParameters

from servers.common.identity import new_agent_did
from tests.e2e.conftest import STATESET, STEP, Launch, child_env, free_port, launched
from tests.helpers import call, scaled

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "agents" / "procurement.yaml"
COSIGNERS = ["--cosigner", Account.create().address, "--cosigner", Account.create().address]


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A `stateset up` whose data directory the tests know: its home and base URL."""
    home, port = tmp_path_factory.mktemp("up"), free_port()
    command = [STATESET, "up", "--port", str(port), "--home", str(home)]
    launch = Launch(command, port=port, ready="/ready", env=child_env(home), log=home / "up.log", name="stateset up")
    with launched(launch) as (running,):
        yield home, running.base


def run(command: list[str], home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, env=child_env(home, **env), capture_output=True, text=True, timeout=STEP)


def test_agent_run_with_its_token_acts_as_the_token_s_agent_and_again_after_a_restart(
    tmp_path: Path, up: tuple[Path, str]
) -> None:
    mesh_home, url = up
    agent_id = new_agent_did()
    issued = run(
        [STATESET, "token", "issue", "--subject", agent_id, "--scopes", "agent", "--home", str(mesh_home)], mesh_home
    )
    assert issued.returncode == 0, issued.stderr
    assert re.search(r"expires \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$", issued.stderr.strip()), issued.stderr
    assert "had no mesh authority" not in issued.stderr  # the running mesh's
    token = issued.stdout.strip()
    home = tmp_path / "agent"
    command = [STATESET, "agent", "run", str(CONFIG), "--url", url, "--cycles", "2", "--interval", "0", *COSIGNERS]
    unpinned = run([*command, "--home", str(home)], home, STATESET_TOKEN=token)  # no key to check the mesh with
    assert unpinned.returncode == 2 and "set STATESET_AUTHORITY_KEY_FILE to a file holding" in unpinned.stderr
    public = run([STATESET, "token", "public-key", "--home", str(mesh_home)], mesh_home)
    assert public.returncode == 0 and public.stdout.startswith("-----BEGIN PUBLIC KEY-----"), public.stderr
    key_file = tmp_path / "authority.pub"
    key_file.write_text(public.stdout)
    first = run([*command, "--home", str(home)], home, STATESET_TOKEN=token, STATESET_AUTHORITY_KEY_FILE=str(key_file))
    assert first.returncode == 0, first.stderr
    assert "procurement-agent created" in first.stdout and "2 cycles" in first.stdout
    assert first.stdout.count("procurement-agent created") == 1 and "agent.journal" not in first.stderr
    assert agent_id in first.stdout  # the token's subject is the agent
    assert "to be funded by the operator" in first.stdout  # an agent's token mints nothing
    assert "frames: no agent in discovery offers supply:bike-frames" in first.stdout  # a fresh mesh: it says so
    assert token not in first.stdout + first.stderr
    again = run([*command, "--home", str(home)], home, STATESET_TOKEN=token, STATESET_AUTHORITY_KEY_FILE=str(key_file))
    assert again.returncode == 0, again.stderr
    assert "procurement-agent resumed" in again.stdout and "4 cycles" in again.stdout

    forged = token[:-4] + "AAAA"  # not the mesh's
    other = run([*command, "--home", str(home)], home, STATESET_TOKEN=forged, STATESET_AUTHORITY_KEY_FILE=str(key_file))
    assert other.returncode != 0 and "procurement-agent resumed" not in other.stdout
    stranger = run(
        [STATESET, "token", "issue", "--subject", new_agent_did(), "--scopes", "agent", "--home", str(mesh_home)],
        mesh_home,
    )
    refused = run([*command, "--home", str(home)], home, STATESET_TOKEN=stranger.stdout.strip())
    assert refused.returncode == 2 and f"but procurement-agent in {home} is {agent_id}" in refused.stderr

    without = run([*command, "--home", str(tmp_path / "none")], tmp_path / "none")
    assert without.returncode == 2 and "set STATESET_TOKEN" in without.stderr


def test_agent_run_sharing_the_mesh_s_data_directory_issues_its_own_token_and_is_funded(up: tuple[Path, str]) -> None:
    mesh_home, url = up
    command = [STATESET, "agent", "run", str(CONFIG), "--url", url, "--cycles", "1", "--interval", "0", *COSIGNERS]
    shared = run([*command, "--home", str(mesh_home)], mesh_home)
    assert shared.returncode == 0, shared.stderr
    assert "procurement-agent created" in shared.stdout and "funded with 1000 USDC" in shared.stdout
    assert "available 1000 USDC" in shared.stdout


def test_agent_run_against_a_mesh_that_is_not_there_says_so_in_one_line(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # held, not listening: every connection is refused
    command = [STATESET, "agent", "run", str(CONFIG), "--url", url, "--home", str(tmp_path), *COSIGNERS]
    wait = max(1, round(scaled(2)))
    issued = run([STATESET, "token", "issue", "--subject", new_agent_did(), "--scopes", "agent"], tmp_path)
    assert f"{tmp_path} had no mesh authority: a new one was made" in issued.stderr  # a likely mistake: it says so
    token = issued.stdout.strip()
    refused = run(command, tmp_path, STATESET_MESH_WAIT=str(wait), STATESET_TOKEN=token)
    assert refused.returncode == 2, refused.stderr
    assert "Traceback" not in refused.stderr and "ExceptionGroup" not in refused.stderr, refused.stderr
    [line] = [line for line in refused.stderr.splitlines() if line.startswith("stateset:")]
    assert line == refused.stderr.splitlines()[-1]
    assert f"the mesh at {url} is not ready within {wait} s: " in line
    assert "wallet, governance, reputation, discovery, salesforce, sap not reachable" in line
    assert "STATESET_MESH_WAIT=SECONDS" in line

    bad = run(command, tmp_path, STATESET_MESH_WAIT="soon", STATESET_TOKEN=token)
    assert (bad.returncode, bad.stderr.strip()) == (2, "stateset: STATESET_MESH_WAIT='soon' is not an integer")


async def test_a_host_launches_the_agent_over_stdio(tmp_path: Path) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "agent.cli", "agent", "serve", str(CONFIG), "--home", str(tmp_path), *COSIGNERS],
        env=child_env(tmp_path),
    )
    async with Client(params, read_timeout_seconds=STEP) as host:
        summary = await call(host, "run_cycle")
        assert summary["cycle"] == 1 and {d["goal"] for d in summary["decisions"]} == {"reserve", "frames", "acme-deal"}
        state = await call(host, "get_state")
        assert state["name"] == "procurement-agent" and state["wallet"].startswith("0x")


def test_agent_run_stops_at_once_when_the_mesh_refuses_its_token_or_is_not_the_mesh_it_trusts(
    tmp_path: Path, up: tuple[Path, str]
) -> None:
    mesh_home, url = up
    command = [STATESET, "agent", "run", str(CONFIG), "--url", url, "--home", str(tmp_path / "agent"), *COSIGNERS]
    issued = run(
        [STATESET, "token", "issue", "--subject", new_agent_did(), "--scopes", "agent", "--home", str(mesh_home)],
        mesh_home,
    )
    token = issued.stdout.strip()
    key_file, other_key = tmp_path / "authority.pub", tmp_path / "other.pub"
    key_file.write_text(run([STATESET, "token", "public-key", "--home", str(mesh_home)], mesh_home).stdout)
    other_key.write_text(run([STATESET, "token", "public-key", "--home", str(tmp_path / "other")], tmp_path).stdout)
    patient = {"STATESET_MESH_WAIT": "3600"}  # were it to wait for the mesh, the step's timeout would end the test

    foreign = run(command, tmp_path, STATESET_TOKEN=token, STATESET_AUTHORITY_KEY_FILE=str(other_key), **patient)
    assert foreign.returncode == 2, foreign.stderr
    assert f"stateset: the mesh at {url} refused the agent: {url}/" in foreign.stderr
    assert (
        "did not prove it is the mesh's" in foreign.stderr
        and "the certificate is not the mesh authority's" in foreign.stderr
    )
    assert token not in foreign.stdout + foreign.stderr

    token_id = issued.stderr.split()[1]
    assert run([STATESET, "token", "revoke", token_id, "--home", str(mesh_home)], mesh_home).returncode == 0
    revoked = run(command, tmp_path, STATESET_TOKEN=token, STATESET_AUTHORITY_KEY_FILE=str(key_file), **patient)
    assert revoked.returncode == 2, revoked.stderr
    assert f"refused the token (401: token {token_id} was revoked)" in revoked.stderr
    assert "is `stateset up` running there?" not in revoked.stderr
