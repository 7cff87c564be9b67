"""Keys at rest as an operator meets them: `stateset up` on a fresh machine, `stateset keys rotate` while it runs,
and a data directory from an older release that kept the password beside the keys."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from mcp import Client

from servers.common.identity import new_agent_did
from servers.common.keystore import encrypt_account
from tests.conftest import TEST_SCRYPT_N
from tests.e2e.conftest import STATESET, STEP, Launch, child_env, free_port, launched
from tests.helpers import call, eventually

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([STATESET, *args], env=env, capture_output=True, text=True, timeout=STEP)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    before = os.umask(0o022)  # what the launched processes inherit: the common default
    try:
        yield
    finally:
        os.umask(before)


async def test_up_on_a_fresh_machine_then_rotating_governance_while_it_runs(tmp_path: Path, loose_umask: None) -> None:
    home, config = tmp_path / "home", tmp_path / "config"
    env = child_env(home, XDG_CONFIG_HOME=str(config))
    up = Launch(
        [STATESET, "up", "--port", str(port := free_port()), "--home", str(home), "--no-auth"],
        port=port,
        ready="/ready",
        env=env,
        log=tmp_path / "up.log",
        name="stateset up",
    )
    with launched(up) as (running,):
        [password_file] = (config / "stateset").iterdir()  # made on the first start, with no input, outside home
        assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
        async with Client(f"{running.base}/mcp", read_timeout_seconds=STEP) as gateway:
            payer = await call(
                gateway,
                "wallet_create_wallet",
                label="agent",
                daily_limit="500",
                per_transaction_limit="100",
                approval_required_above="10",
            )
            await call(gateway, "wallet_fund_wallet", address=payer["address"], amount="100")
            payee = Account.create().address
            action = {"type": "payment", "amount": "25", "payer": payer["address"], "counterparty": payee}

            async def approved() -> dict[str, object]:
                decision = await call(gateway, "governance_evaluate_action", agent_id=new_agent_did(), action=action)
                assert decision["outcome"] == "approved"
                return decision

            async def pay(decision: dict[str, object]) -> None:
                payment = {"from_address": payer["address"], "to_address": payee, "amount": "25"}
                paid = await call(gateway, "wallet_execute_payment", **payment, approval=decision["receipt"])
                assert paid["status"] == "settled"

            old = (await call(gateway, "governance_get_policy"))["governance_address"]
            before = await approved()
            rotated = run("keys", "rotate", "governance", "--home", str(home), env=env)
            assert rotated.returncode == 0, rotated.stderr
            new = rotated.stdout.split()[3]
            assert f"{old} is retired: it still verifies the receipts it signed" in rotated.stdout
            assert f"STATESET_GOVERNANCE_RETIRED_KEYS={old}@" in rotated.stdout

            async def rotated_in_the_running_mesh() -> bool:
                return bool((await call(gateway, "governance_get_policy"))["governance_address"] == new)

            await eventually(rotated_in_the_running_mesh)  # no restart
            await pay(before)  # signed by the old key before the rotation: still honoured
            await pay(await approved())  # signed by the new key: the running wallet follows the rotation

        status = run("keys", "status", "--home", str(home), env=env)
        assert f"password        the file {password_file}" in status.stdout
        assert f"governance key  {new} (retired, still verifying: {old} until" in status.stdout

    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in home.rglob("*")}
    assert {"wallet.db", "wallet.db-wal", "governance.keystore.json", "governance.rotations.json"} <= set(modes)
    assert {name: mode for name, mode in modes.items() if mode != 0o600} == {}
    assert stat.S_IMODE(home.stat().st_mode) == 0o700


def test_a_home_with_its_password_beside_the_keys_is_refused_until_migrated(tmp_path: Path) -> None:
    home, config = tmp_path / "home", tmp_path / "config"
    home.mkdir()
    (home / "keystore.password").write_text("an-old-release-password\n")
    account = Account.create()
    keystore = encrypt_account(account, "an-old-release-password", scrypt_n=TEST_SCRYPT_N)
    (home / "governance.keystore.json").write_text(keystore)
    env = child_env(home, XDG_CONFIG_HOME=str(config))

    refused = run("address", "governance", "--home", str(home), env=env)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1] == (
        f"stateset: {home}/keystore.password keeps the keystore password beside the keys it opens; move it out of "
        f"the data directory with: stateset keys migrate-password --home {home}"
    )

    migrated = run("keys", "migrate-password", "--home", str(home), env=env)
    assert migrated.returncode == 0, migrated.stderr
    assert "(it opens governance.keystore.json)" in migrated.stdout and "rotate the server keys" in migrated.stdout
    assert not (home / "keystore.password").exists()
    address = run("address", "governance", "--home", str(home), env=env)
    assert address.returncode == 0 and address.stdout.strip() == account.address

    elsewhere = child_env(home, XDG_CONFIG_HOME=str(tmp_path / "another-machine"))  # the directory alone
    copied = run("address", "governance", "--home", str(home), env=elsewhere)
    assert copied.returncode == 2 and f"no keystore password for the keys in {home}" in copied.stderr
