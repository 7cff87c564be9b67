"""A governance server on a real SQLite file, reached through the SDK's in-memory `Client` in either era."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from mcp.server.mcpserver import MCPServer

from servers.common.db import Database
from servers.common.feed import ChangeFeed
from servers.common.identity import Signer, new_agent_did
from servers.governance.policy import compile_policy
from servers.governance.policy_text import parse_document
from servers.governance.server import build_server
from servers.governance.service import GovernanceService
from servers.governance.settings import GovernanceSettings
from servers.governance.store import MIGRATIONS, GovernanceStore
from tests.conftest import ManualClock
from tests.helpers import ERAS, call, refused, sign

__all__ = ["ERAS", "call", "refused", "sign"]

CHAIN_ID = 31337
APPROVERS = [Account.create() for _ in range(3)]

POLICY = f"""
name: test-policy
action_types: [vendor_onboarding]
compliance:
  sanctioned_counterparties: ["0x000000000000000000000000000000000000dEaD"]
  blocked_categories: [gambling]
  jurisdictions: {{blocked: [KP]}}
workflows:
  finance:
    approvers: [{", ".join(repr(a.address) for a in APPROVERS)}]
    required: 2
    timeout: 1h
  desk:
    approvers: [host]
    required: 1
    timeout: 30m
rules:
  payment:
    - id: per_transaction_limit
      effect: deny
      when: {{amount_above: "100"}}
      message: a single payment may not exceed 100 USDC
    - id: daily_budget
      effect: deny
      when: {{velocity: {{window: 24h, max_amount: "500"}}}}
    - id: large_payment
      effect: require_approval
      workflow: finance
      when: {{amount_above: "50"}}
    - id: routine_payment
      effect: allow
      when: {{amount_at_most: "100"}}
  treasury:
    - id: treasury_needs_desk
      effect: require_approval
      workflow: desk
  create_lead:
    - id: leads
      effect: allow
  vendor_onboarding: []
"""


@dataclass
class Harness:
    service: GovernanceService
    server: MCPServer[Any]
    clock: ManualClock
    governance: LocalAccount
    db: Database
    agent: str

    def payment(self, amount: str, **extra: Any) -> dict[str, Any]:
        action = {"type": "payment", "amount": amount, "payer": PAYER.address, "counterparty": PAYEE.address}
        return action | extra


PAYER, PAYEE = Account.create(), Account.create()


@pytest.fixture
async def harness(tmp_path: Path, clock: ManualClock) -> AsyncIterator[Harness]:
    governance: LocalAccount = Account.create()
    async with Database.open(tmp_path / "governance.db", MIGRATIONS) as db:
        feed = ChangeFeed()
        policy = compile_policy(parse_document(POLICY))
        service = GovernanceService(
            GovernanceStore(db),
            Signer(governance),
            GovernanceSettings(),
            feed,
            policy,
            clock(),
            chain_id=CHAIN_ID,
            clock=clock,
        )
        yield Harness(service, build_server(service, feed), clock, governance, db, new_agent_did())
