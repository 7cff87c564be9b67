"""The journal against a real agents.db: a save that fails keeps the audit entries it did not write."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.journal import Journal
from agent.state import AgentState, AgentStore, StaleStateError

pytestmark = pytest.mark.anyio


def new_state() -> AgentState:
    return AgentState(
        id="did:stateset:agent:journal-test",
        did="did:pkh:eip155:1:0x" + "11" * 20,
        name="journal-test",
        type="procurement",
        address="0x" + "11" * 20,
        owner="0x" + "22" * 20,
    )


async def test_a_save_that_fails_keeps_its_audit_entries_for_the_next_save(tmp_path: Path) -> None:
    async with AgentStore.open(tmp_path / "agents.db") as store:
        journal = Journal(store, clock=lambda: 1.0)
        journal.adopt(new_state())
        journal.emit("bootstrap", "created")
        await journal.save()
        other = journal.state.model_copy(deep=True)  # a second runtime on the same agent saves meanwhile
        await store.save(other)

        journal.emit("act", "paid 80 USDC", cycle=1)
        journal.emit("act", "purchase order 4500000001 created", cycle=1)
        with pytest.raises(StaleStateError):
            await journal.save()
        journal.emit("learn", "cycle 1", cycle=1)  # after the failed save: written after the ones it kept
        journal.state.version += 1  # the copy caught up with the stored version (as a reload would)
        await journal.save()

        trail = [(entry.phase, entry.summary) for _, entry in await store.audit(journal.state.id)]
        assert trail == [
            ("bootstrap", "created"),
            ("act", "paid 80 USDC"),
            ("act", "purchase order 4500000001 created"),
            ("learn", "cycle 1"),
        ]
        assert [entry.summary for entry in journal.state.audit_trail][-3:] == [summary for _, summary in trail[1:]]
