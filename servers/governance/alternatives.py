"""What an agent could do instead, computed by evaluating the policy again, never guessed. Pure.

The outcome can change with the amount only where a rule's amount threshold or velocity budget lies,
so those points (below the requested amount) are the candidates; each is evaluated in full:

- reduce_amount: the largest amount approved now.
- split: that amount, repeated until the requested total, if every part would be approved in turn
  (each part counts against the velocity limits of the next, and, just under a threshold, towards a
  structuring run that raises the agent's threat level).
- request_approval: for a denied action, the largest amount that would go to an approval workflow.
"""

from __future__ import annotations

import math
from dataclasses import replace

from servers.common.money import format_usdc
from servers.governance.models import Alternative, Outcome
from servers.governance.policy import Policy
from servers.governance.rules import Facts, Partial, Request


def alternatives(policy: Policy, request: Request, facts: Facts, outcome: Outcome) -> list[Alternative]:
    if request.amount is None or outcome == "approved":
        return []
    partial = Partial(policy, request, facts)
    amounts = sorted((p for p in partial.thresholds(facts) if 0 < p < request.amount), reverse=True)
    found: list[Alternative] = []
    approvable = _largest(partial, facts, amounts, "approved")
    if approvable is not None:
        found.append(
            Alternative(
                kind="reduce_amount",
                amount=approvable,
                detail=f"{format_usdc(approvable)} USDC would be approved now",
            )
        )
        parts = math.ceil(request.amount / approvable)
        if parts > 1 and _split_passes(policy, partial, request, facts, approvable, parts):
            found.append(
                Alternative(
                    kind="split",
                    amount=approvable,
                    parts=parts,
                    detail=f"{parts} payments of at most {format_usdc(approvable)} USDC would each be approved now",
                )
            )
    if outcome == "denied":
        reviewable = _largest(partial, facts, amounts, "pending_approval")
        if reviewable is not None:
            workflow = partial.outcome(reviewable, facts)[1]
            found.append(
                Alternative(
                    kind="request_approval",
                    amount=reviewable,
                    workflow=None if workflow is None else workflow.name,
                    detail=f"up to {format_usdc(reviewable)} USDC can go to approval"
                    + ("" if workflow is None else f" by {workflow.name}"),
                )
            )
    return found


def _largest(partial: Partial, facts: Facts, amounts: list[int], wanted: Outcome) -> int | None:
    return next((amount for amount in amounts if partial.outcome(amount, facts)[0] == wanted), None)


def _split_passes(policy: Policy, partial: Partial, request: Request, facts: Facts, part: int, parts: int) -> bool:
    assert request.amount is not None
    usage, near_run = dict(facts.usage), facts.near_run
    remaining = request.amount
    for _ in range(parts):
        amount = min(part, remaining)
        if partial.outcome(amount, replace(facts, usage=usage, near_run=near_run))[0] != "approved":
            return False
        usage = {window: (count + 1, total + amount) for window, (count, total) in _all_windows(policy, request, usage)}
        near_run += partial.near(amount)
        remaining -= amount
    return True


def _all_windows(
    policy: Policy, request: Request, usage: dict[int, tuple[int, int]]
) -> list[tuple[int, tuple[int, int]]]:
    return [(window, usage.get(window, (0, 0))) for window in policy.velocity_windows(request.type)]
