"""Velocity budgets through the tools: what counts, when it stops counting, and decisions that race."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from mcp import Client

from servers.governance.store import GovernanceStore, GovernanceTx
from tests.servers.governance.conftest import APPROVERS, Harness, call, sign

pytestmark = pytest.mark.anyio

DAY = 24 * 3600


async def decide(client: Client, harness: Harness, amount: str) -> dict[str, Any]:
    return await call(client, "evaluate_action", agent_id=harness.agent, action=harness.payment(amount))


def budget_note(decision: dict[str, Any]) -> str:
    return next(note for note in decision["monitoring"] if note.startswith("daily_budget"))


async def test_pending_requests_use_the_budget_until_they_are_rejected_or_expire(
    client: Client, harness: Harness
) -> None:
    pending = [await decide(client, harness, "90") for _ in range(5)]
    assert {decision["outcome"] for decision in pending} == {"pending_approval"}
    over = await decide(client, harness, "60")
    assert over["outcome"] == "denied" and over["reasons"][0]["rule_id"] == "daily_budget"
    assert budget_note(over) == "daily_budget: 510 of 500 USDC with this action"

    approval = pending[0]["approval"]
    await call(
        client,
        "reject_approval",
        approval_id=approval["approval_id"],
        approver=APPROVERS[0].address,
        signature=sign(APPROVERS[0], approval["to_sign"]["reject"]),
    )
    fits = await decide(client, harness, "50")  # the rejected 90 no longer counts
    assert fits["outcome"] == "approved" and budget_note(fits) == "daily_budget: 410 of 500 USDC with this action"

    harness.clock.advance(3600)  # the four other requests time out (fail closed) and stop counting
    assert (await call(client, "list_pending_approvals"))["result"] == []
    after = await decide(client, harness, "50")
    assert after["outcome"] == "approved" and budget_note(after) == "daily_budget: 100 of 500 USDC with this action"
    explained = await call(client, "explain", agent_id=harness.agent, action=harness.payment("1"))
    assert any("101 USDC in 1d <= 500 USDC" in c for rule in explained["rules"] for c in rule["conditions"])

    harness.clock.advance(DAY - 3600)  # a day after the first 50: it has left the window, the second not
    assert budget_note(await decide(client, harness, "1")) == "daily_budget: 51 of 500 USDC with this action"


async def test_racing_decisions_lose_no_update(client: Client, harness: Harness) -> None:
    outcomes: list[str] = []

    async def one() -> None:
        outcomes.append((await decide(client, harness, "50"))["outcome"])

    async with anyio.create_task_group() as tasks:
        for _ in range(16):
            tasks.start_soon(one)
    assert sorted(outcomes) == ["approved"] * 10 + ["denied"] * 6  # a 500 USDC budget holds ten of 50

    def usage(tx: GovernanceTx) -> dict[int, tuple[int, int]]:
        return tx.usage(harness.agent, "payment", [DAY], harness.clock(), keep=False)

    assert await GovernanceStore(harness.db).read(usage) == {DAY: (10, 500_000_000)}
