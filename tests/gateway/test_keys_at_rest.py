"""Keys at rest, on a whole mesh started the way `stateset up` starts it, on real files in a real data directory.

The attack this answers: the keystore password sat in the data directory beside every keystore, so whoever read
the directory held every key, governance's and reputation's included, and forged receipts and slash orders that
wallets honoured. Now a copy of the directory alone opens no key; every file in it is its owner's alone; and a
server key can be rotated while the mesh runs, the old key still verifying what it signed until that expires.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import stat
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from mcp import Client

from gateway.launcher import Mesh, running_mesh
from servers.common.home import SERVER_KEYSTORES
from servers.common.identity import Signer
from servers.common.keystore import KeystoreError, ServerKey, decrypt_account, rotate_server_key, server_key
from servers.common.money import parse_usdc
from servers.common.passwords import load_password
from servers.common.receipts import issue_approval, issue_slash_order
from servers.common.rotation import RELOAD_MARGIN_SECONDS
from servers.common.settings import ConfigError, MeshSettings
from servers.wallet import app as wallet_app
from tests.conftest import TEST_SCRYPT_N, ManualClock
from tests.helpers import ERAS, call, refused

pytestmark = pytest.mark.anyio

CHAIN = 31337
LIFETIME = 600  # governance's receipts and reputation's slash orders, by default


@dataclass
class Started:
    home: Path
    environ: dict[str, str]
    mesh: MeshSettings
    running: Mesh
    clock: ManualClock

    def password(self) -> str:
        return load_password(self.home, self.environ)

    def key(self, role: str) -> Signer:
        """The server's key as it is in its keystore now (what an attacker who opened it would sign with)."""
        keystore = (self.home / SERVER_KEYSTORES[role]).read_text()
        return Signer(decrypt_account(keystore, self.password()))

    async def server_key(self, role: str) -> ServerKey:
        """The key object the running server signs with (one per keystore and process)."""
        path = self.home / SERVER_KEYSTORES.get(role, f"{role}.json")
        return await server_key(path, self.home, self.environ, scrypt_n=TEST_SCRYPT_N, role=role)

    async def rotate(self, role: str, *, revoke: bool = False) -> None:
        await rotate_server_key(
            self.home / SERVER_KEYSTORES[role],
            self.home,
            self.environ,
            scrypt_n=TEST_SCRYPT_N,
            chain_id=CHAIN,
            lifetime_seconds=LIFETIME,
            revoke=revoke,
            now=int(self.clock()),
        )


@pytest.fixture
def loose_umask() -> Iterator[None]:
    before = os.umask(0o022)  # the common default: without care, files come out readable by everyone
    try:
        yield
    finally:
        os.umask(before)


@pytest.fixture
async def started(tmp_path: Path, loose_umask: None) -> AsyncIterator[Started]:
    home = tmp_path / "home"
    environ = dict(os.environ) | {"STATESET_HOME": str(home), "STATESET_LOG_LEVEL": "WARNING"}
    environ.pop("STATESET_KEYSTORE_PASSWORD", None)  # the default: the password file outside the home
    mesh = MeshSettings.from_env(environ, home=home)
    clock = ManualClock()
    async with running_mesh(mesh, environ, clock=clock) as running:
        yield Started(home, environ, mesh, running, clock)


async def new_wallet(wallet: Client, fund: str = "1000") -> str:
    limits = {"daily_limit": "500", "per_transaction_limit": "100", "approval_required_above": "20"}
    address = str((await call(wallet, "create_wallet", label="w", **limits))["address"])
    await call(wallet, "fund_wallet", address=address, amount=fund)
    return address


async def test_after_an_up_start_the_home_is_0700_and_every_file_in_it_0600(started: Started) -> None:
    async with Client(started.running.servers["wallet"]) as wallet:
        await new_wallet(wallet)  # a wallet keystore, in wallet.db
    await started.server_key("agent-buyer")  # an agent's keystore, as `stateset agent run` makes it
    files = {path.name: stat.S_IMODE(path.stat().st_mode) for path in started.home.rglob("*")}
    expected = {"wallet.db", "wallet.db-wal", "wallet.db-shm", "wallet.db.lock", "governance.keystore.json"}
    assert expected | {"reputation.keystore.json", "agent-buyer.json", "governance.db", "reputation.db"} <= set(files)
    assert {name: mode for name, mode in files.items() if mode != 0o600} == {}
    assert stat.S_IMODE(started.home.stat().st_mode) == 0o700
    assert started.password().encode() not in b"".join(p.read_bytes() for p in started.home.rglob("*") if p.is_file())


async def test_a_copy_of_the_home_alone_opens_no_key(started: Started, tmp_path: Path) -> None:
    async with Client(started.running.servers["wallet"]) as wallet:
        for _ in range(2):
            await new_wallet(wallet)
    await started.server_key("agent-buyer")
    copy = tmp_path / "copy"
    shutil.copytree(started.home, copy)
    keystores = keystores_in(copy)
    assert len(keystores) == 5  # governance, reputation, the agent's and two wallets'

    # with the password (from outside the copy) every one of them opens: the keys are really in the copy
    password = started.password()
    for keystore in keystores:
        decrypt_account(keystore, password)

    # the attacker holds the copy only: no string in it opens a key (they share one password: one is tried)
    candidates = strings_in(copy)
    assert len(candidates) > 50
    for candidate in candidates:
        with pytest.raises(KeystoreError):
            decrypt_account(keystores[0], candidate)

    # and the mesh's own code, run on the copy on another machine, refuses rather than making a new password
    elsewhere = {key: value for key, value in started.environ.items() if not key.startswith("STATESET_KEYSTORE_PASS")}
    elsewhere |= {"XDG_CONFIG_HOME": str(tmp_path / "another-machine"), "STATESET_HOME": str(copy)}
    refusal = f"no keystore password for the keys in {copy}"
    for role, name in {**SERVER_KEYSTORES, "agent-buyer": "agent-buyer.json"}.items():
        with pytest.raises(ConfigError, match=refusal):
            await server_key(copy / name, copy, elsewhere, scrypt_n=TEST_SCRYPT_N, role=role)
    with pytest.raises(ConfigError, match=refusal):
        async with wallet_app.running(MeshSettings(home=copy, keystore_scrypt_n=TEST_SCRYPT_N), elsewhere):
            pass
    assert not (tmp_path / "another-machine").exists()


def keystores_in(home: Path) -> list[str]:
    files = [path.read_text() for pattern in ("*.keystore.json", "agent-*.json") for path in sorted(home.glob(pattern))]
    with sqlite3.connect(home / "wallet.db") as db:
        return files + [str(row[0]) for row in db.execute("SELECT keystore FROM wallets")]


def strings_in(folder: Path) -> set[str]:
    """Every word-like string in every file, and every text value in every SQLite table, of `folder`."""
    texts = [path.read_bytes().decode("utf-8", "replace") for path in folder.rglob("*") if path.is_file()]
    for database in folder.glob("*.db"):
        with sqlite3.connect(database) as db:
            for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
                texts += [str(value) for row in db.execute(f'SELECT * FROM "{table}"') for value in row]
    return {word for text in texts for word in re.findall(r"[A-Za-z0-9_\-]{8,}", text)} | {t.strip() for t in texts}


@pytest.mark.parametrize("era", list(ERAS))
async def test_after_rotating_governance_old_receipts_pay_until_they_expire_and_nothing_later(
    started: Started, era: str
) -> None:
    old = started.key("governance")
    async with Client(started.running.servers["wallet"], mode=ERAS[era]) as wallet:
        payer, payee = await new_wallet(wallet), await new_wallet(wallet)

        def receipt(signer: Signer, decision: str, expires_in: int) -> dict[str, Any]:
            issued = issue_approval(
                signer,
                CHAIN,
                decision_id=decision,
                payer=payer,
                payee=payee,
                amount=parse_usdc("30"),
                expires_at=int(started.clock()) + expires_in,
            )
            return issued.model_dump(mode="json")

        async def pay(approval: dict[str, Any]) -> Any:
            return await wallet.call_tool(
                "execute_payment", {"from_address": payer, "to_address": payee, "amount": "30", "approval": approval}
            )

        issued_before = [receipt(old, f"before-{i}", LIFETIME) for i in range(2)]
        await started.rotate("governance")
        new = started.key("governance")
        assert new.address != old.address

        # the running governance server takes the new key (its follow task does this within a second)
        running_key = await started.server_key("governance")
        await running_key.reload()
        async with Client(started.running.servers["governance"], mode=ERAS[era]) as governance:
            assert (await call(governance, "get_policy"))["governance_address"] == new.address

        # the old key: what it signed before the rotation still pays, until it expires
        assert not (await pay(issued_before[0])).is_error
        # ... but a receipt it signs now, expiring past its window, is refused: it was signed after retirement
        late = receipt(old, "late", LIFETIME + RELOAD_MARGIN_SECONDS + 1)
        message = await refused(
            wallet, "execute_payment", from_address=payer, to_address=payee, amount="30", approval=late
        )
        assert "is signed by " + old.address + ", a retired key that verifies only what expires by" in message
        # the new key signs from now on; a forged receipt is refused as before
        assert not (await pay(receipt(new, "after", LIFETIME))).is_error
        forged = receipt(Signer(Account.create()), "forged", LIFETIME)
        message = await refused(
            wallet, "execute_payment", from_address=payer, to_address=payee, amount="30", approval=forged
        )
        assert "is not signed by a trusted governance key" in message

        started.clock.advance(LIFETIME + 1)
        message = await refused(
            wallet, "execute_payment", from_address=payer, to_address=payee, amount="30", approval=issued_before[1]
        )
        assert "expired at" in message
        assert (await call(wallet, "get_balance", address=payer))["available"] == "940"


async def test_a_revoked_governance_key_verifies_nothing_from_the_rotation_on(started: Started) -> None:
    old = started.key("governance")
    async with Client(started.running.servers["wallet"]) as wallet:
        payer, payee = await new_wallet(wallet), await new_wallet(wallet)
        issued = issue_approval(
            old,
            CHAIN,
            decision_id="d",
            payer=payer,
            payee=payee,
            amount=parse_usdc("30"),
            expires_at=int(started.clock()) + 60,
        ).model_dump(mode="json")
        await started.rotate("governance", revoke=True)
        message = await refused(
            wallet, "execute_payment", from_address=payer, to_address=payee, amount="30", approval=issued
        )
        assert "a retired key that verifies only what expires by" in message


@pytest.mark.parametrize("era", list(ERAS))
async def test_after_rotating_reputation_old_slash_orders_are_honoured_until_they_expire(
    started: Started, era: str
) -> None:
    old = started.key("reputation")
    treasury = Account.create().address
    async with Client(started.running.servers["wallet"], mode=ERAS[era]) as wallet:
        agent = await new_wallet(wallet, fund="100")
        await call(wallet, "stake", address=agent, amount="50")

        def order(signer: Signer, incident: str, expires_in: int) -> dict[str, Any]:
            issued = issue_slash_order(
                signer,
                CHAIN,
                incident_id=incident,
                wallet=agent,
                amount=parse_usdc("5"),
                recipient=treasury,
                expires_at=int(started.clock()) + expires_in,
            )
            return issued.model_dump(mode="json")

        signed_before = order(old, "inc-before", LIFETIME)
        await started.rotate("reputation")
        new = started.key("reputation")
        assert (await call(wallet, "slash_stake", order=signed_before))["amount"] == "5"
        late = await refused(wallet, "slash_stake", order=order(old, "inc-late", LIFETIME + RELOAD_MARGIN_SECONDS + 1))
        assert "a retired key that verifies only what expires by" in late
        forged = await refused(wallet, "slash_stake", order=order(Signer(Account.create()), "inc-forged", 60))
        assert "is not signed by a trusted reputation key" in forged
        assert (await call(wallet, "slash_stake", order=order(new, "inc-after", 60)))["amount"] == "5"
        assert (await call(wallet, "get_balance", address=agent))["staked"] == "40"
