"""Reputation's store across its migrations: wallets learnt before discovery asked for a binding are dropped, and
discovery's registrations are read again so that each wallet returns only with its proof."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account

from servers.common.changes import Change
from servers.common.db import Database
from servers.reputation.directory import Directory
from servers.reputation.store import MIGRATIONS, Identity, ReputationStore

pytestmark = pytest.mark.anyio

T0 = 1_790_000_000.0
AGENT, OTHER = (
    "did:stateset:agent:00000000-0000-4000-8000-000000000001",
    "did:stateset:agent:00000000-0000-4000-8000-000000000002",
)


def registration(seq: int, agent_id: str, wallet: str, proof: str | None) -> Change:
    body = {"state": "registered", "agent_id": agent_id, "address": Account.create().address, "owner": "0x" + "1" * 40}
    body |= {"wallet": wallet, "wallet_proof": proof, "name": agent_id[-1]}
    return Change(seq=seq, kind="agent", subject=agent_id, body=body, at=T0)


async def test_wallets_from_before_bindings_are_dropped_and_discovery_is_read_again(tmp_path: Path) -> None:
    path, wallet = tmp_path / "reputation.db", Account.create().address
    async with Database.open(path, MIGRATIONS[:1]) as db:  # as the release before proofs left it
        old = Identity(AGENT, Account.create().address, "0x" + "1" * 40, wallet, True)
        await ReputationStore(db).write(lambda tx: tx.apply_identities([old], [], 7, T0))
    async with Database.open(path, MIGRATIONS) as db:
        store = ReputationStore(db)
        directory = Directory(store, None, clock=lambda: T0)
        kept = await store.read(lambda tx: tx.identity(AGENT))
        assert kept is not None and kept.wallet is None
        assert await directory.cursor() == 0  # so the whole log is read again, with the proofs
        await directory.apply(
            [registration(1, AGENT, wallet, "0x" + "ab" * 65), registration(2, OTHER, wallet, None)], 2
        )
        bound = await store.read(lambda tx: tx.identity(AGENT))
        unbound = await store.read(lambda tx: tx.identity(OTHER))
        assert bound is not None and bound.wallet == wallet
        assert unbound is not None and unbound.wallet is None
