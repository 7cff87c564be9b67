"""The CognitiveEngine on its own: options per goal type, every constraint, scores, both planners."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.cognition import CognitiveEngine, Option, Perception, RulePlanner, SamplingPlanner, Supplier
from agent.state import AgentState, Goal, GoalType, Task

pytestmark = pytest.mark.anyio

USDC = 1_000_000
OWNER = "0x" + "aa" * 20


def goals() -> list[Goal]:
    return [
        Goal(
            id="reserve", type=GoalType.FINANCIAL, kind="maintain_reserve", description="r", params={"minimum": "200"}
        ),
        Goal(
            id="frames",
            type=GoalType.OPERATIONAL,
            kind="replenish_stock",
            description="frames",
            params={
                "material": "FRAME",
                "plant": "1710",
                "reorder_point": "100",
                "order_quantity": "250",
                "capability": "supply:frames",
                "min_reputation": 25,
                "max_price": "100",
            },
        ),
        Goal(
            id="deal",
            type=GoalType.STRATEGIC,
            kind="advance_opportunity",
            description="deal",
            params={"opportunity_name": "Deal", "supplied_by": "frames", "stage_when_supplied": "Negotiation/Review"},
        ),
    ]


def agent(**changes: Any) -> AgentState:
    state = AgentState(
        id="did:stateset:agent:00000000-0000-4000-8000-000000000001",
        did="did:pkh:eip155:31337:0x" + "01" * 20,
        name="buyer",
        type="procurement",
        address="0x" + "01" * 20,
        owner=OWNER,
        goals=goals(),
        permissions=["payment", "purchase_order", "update_opportunity"],
    )
    return state.model_copy(update=changes)


def supplier(name: str, price: int, bound: float | None = 60.0, load: int = 10, owner: str | None = None) -> Supplier:
    return Supplier(
        agent_id=f"did:stateset:agent:{name}",
        name=name,
        owner=owner or "0x" + "bb" * 20,
        wallet="0x" + "cc" * 20,
        price=price * USDC,
        load=load,
        reputation=None if bound is None else bound + 10,
        lower_bound=bound,
    )


def seen(*suppliers: Supplier, quantity: str = "40", available: int = 1000, remaining: int = 500) -> Perception:
    return Perception(
        at=1_790_000_000,
        available=available * USDC,
        daily_remaining=remaining * USDC,
        per_transaction_limit=100 * USDC,
        stock={"frames": {"quantity": quantity, "unit": "PC"}},
        suppliers={"frames": list(suppliers)},
    )


def goal(goal_id: str) -> Goal:
    return next(g for g in goals() if g.id == goal_id)


async def test_low_stock_buys_the_best_value_that_passes_every_constraint() -> None:
    perception = seen(supplier("cheap", 60, bound=20), supplier("good", 80), supplier("premium", 95))
    decision = await CognitiveEngine().decide(goal("frames"), perception, agent())
    assert decision.chosen.id == "buy:good" and decision.chosen.amount == 80 * USDC
    assert decision.rejected == {"buy:cheap": "cheap's reputation (lower bound 20) is below the goal's minimum 25"}
    assert "40 PC on hand, below the reorder point 100" in decision.rationale
    assert "Ruled out: cheap's reputation" in decision.rationale
    assert 0.5 < decision.confidence < 1 and decision.planner == "rules"
    assert "250 PC of FRAME ordered in SAP from good" in decision.expected_outcome


@pytest.mark.parametrize(
    ("offer", "perception_changes", "state_changes", "reason"),
    [
        (supplier("x", 80, owner=OWNER), {}, {}, "x has the agent's own owner (no self-dealing)"),
        (supplier("x", 80).model_copy(update={"wallet": None}), {}, {}, "x lists no wallet to be paid in"),
        (supplier("x", 120), {}, {}, "x's price 120 USDC is above the goal's maximum 100"),
        (supplier("x", 80, bound=None), {}, {}, "x's reputation (unrated) is below the goal's minimum 25"),
        (supplier("x", 80), {"remaining": 50}, {}, "80 USDC is more than the 50 USDC left of today's budget"),
        (supplier("x", 80), {"available": 250}, {}, "paying 80 USDC would take the balance below the reserve 200"),
        (supplier("x", 80), {}, {"permissions": ["update_opportunity"]}, "the agent is not permitted payment actions"),
    ],
)
async def test_each_constraint_rules_an_option_out_and_says_why(
    offer: Supplier, perception_changes: dict[str, int], state_changes: dict[str, Any], reason: str
) -> None:
    perception = seen(offer, **perception_changes)
    decision = await CognitiveEngine().decide(goal("frames"), perception, agent(**state_changes))
    assert decision.chosen.action == "hold"
    assert decision.rejected == {"buy:x": reason}


async def test_enough_stock_or_stock_on_order_means_hold() -> None:
    engine = CognitiveEngine()
    full = await engine.decide(goal("frames"), seen(supplier("good", 80), quantity="150"), agent())
    assert full.chosen.action == "hold" and "at or above the reorder point" in full.chosen.summary
    ordered = Task(
        id="t1",
        goal_id="frames",
        action="procure",
        status="done",
        params={"quantity": "250", "unit": "PC"},
        created_at=1_790_000_000 - 3600,
        updated_at=1_790_000_000,
        purchase_order="4500000000",
    )
    waiting = await engine.decide(goal("frames"), seen(supplier("good", 80)), agent(tasks=[ordered]))
    assert waiting.chosen.action == "hold" and "250 on order" in waiting.rationale


async def test_an_open_task_for_the_goal_is_not_duplicated() -> None:
    task = Task(
        id="t1", goal_id="frames", action="procure", status="awaiting_approval", params={}, created_at=0, updated_at=0
    )
    decision = await CognitiveEngine().decide(goal("frames"), seen(supplier("good", 80)), agent(tasks=[task]))
    assert decision.chosen.action == "hold" and "awaiting approval" in decision.chosen.summary


async def test_a_financial_goal_asks_for_funding_below_the_reserve() -> None:
    low = await CognitiveEngine().decide(goal("reserve"), seen(available=150), agent())
    assert low.chosen.action == "request_funding" and low.chosen.params == {"shortfall": 50 * USDC}
    healthy = await CognitiveEngine().decide(goal("reserve"), seen(), agent())
    assert healthy.chosen.action == "hold"


async def test_a_strategic_goal_reports_a_finished_order_once() -> None:
    done = Task(
        id="t1",
        goal_id="frames",
        action="procure",
        status="done",
        params={"quantity": "250", "unit": "PC", "supplier": {"name": "good"}},
        created_at=0,
        updated_at=0,
        purchase_order="4500000007",
        payment_id="0xabc",
    )
    perception = seen()
    perception.opportunity["deal"] = {"Id": "006x", "StageName": "Prospecting", "Description": None}
    update = await CognitiveEngine().decide(goal("deal"), perception, agent(tasks=[done]))
    assert update.chosen.action == "update_opportunity" and "4500000007" in update.chosen.params["description"]
    reported = Task(
        id="t2",
        goal_id="deal",
        action="update_opportunity",
        status="done",
        params=update.chosen.params,
        created_at=0,
        updated_at=0,
    )
    again = await CognitiveEngine().decide(goal("deal"), perception, agent(tasks=[done, reported]))
    assert again.chosen.action == "hold" and "nothing new" in again.chosen.summary
    perception.opportunity["deal"] = {"Id": "006x", "StageName": "Closed Won", "IsClosed": True}
    closed = await CognitiveEngine().decide(goal("deal"), perception, agent(tasks=[done]))
    assert closed.chosen.action == "hold" and "closed" in closed.chosen.summary


async def test_the_sampling_planner_takes_the_models_choice_among_feasible_options_only() -> None:
    asked: list[str] = []

    async def model(prompt: str) -> str:
        asked.append(prompt)
        return 'I pick {"option": "buy:premium", "reason": "fastest delivery"}'

    engine = CognitiveEngine(SamplingPlanner(model))
    perception = seen(supplier("cheap", 60, bound=20), supplier("good", 80), supplier("premium", 95))
    decision = await engine.decide(goal("frames"), perception, agent())
    assert decision.chosen.id == "buy:premium" and decision.planner == "sampling"
    assert "the host's model chose it: fastest delivery (rules preferred buy:good)" in decision.rationale
    assert "buy:cheap" not in asked[0] and "buy:good" in asked[0]  # the model sees only feasible options

    async def wrong(prompt: str) -> str:
        return '{"option": "buy:cheap"}'  # ruled out: not the model's to choose

    fallback = await CognitiveEngine(SamplingPlanner(wrong)).decide(goal("frames"), perception, agent())
    assert fallback.chosen.id == "buy:good"
    assert any("not one of the options; the rules' choice stands" in risk for risk in fallback.risks)

    async def broken(prompt: str) -> str:
        raise RuntimeError("no model")

    unasked = await CognitiveEngine(SamplingPlanner(broken)).decide(goal("frames"), perception, agent())
    assert unasked.chosen.id == "buy:good" and "could not be asked (no model)" in unasked.risks[0]


offers = st.lists(
    st.builds(
        supplier,
        name=st.sampled_from(["a", "b", "c", "d", "e"]),
        price=st.integers(1, 200),
        bound=st.one_of(st.none(), st.floats(0, 100)),
        load=st.integers(0, 100),
        owner=st.sampled_from([None, OWNER]),
    ),
    max_size=5,
    unique_by=lambda s: s.name,
)


@settings(max_examples=150, deadline=None)
@given(
    suppliers=offers,
    available=st.integers(0, 2000),
    remaining=st.one_of(st.integers(0, 120), st.integers(0, 500)),
    quantity=st.one_of(st.integers(0, 99), st.integers(0, 300)),
)
async def test_whatever_it_is_shown_the_engine_never_picks_an_infeasible_purchase(
    suppliers: list[Supplier], available: int, remaining: int, quantity: int
) -> None:
    perception = seen(*suppliers, quantity=str(quantity), available=available, remaining=remaining)
    decision = await CognitiveEngine(RulePlanner()).decide(goal("frames"), perception, agent())
    chosen = decision.chosen
    if chosen.action == "hold":
        assert quantity >= 100 or len(decision.rejected) == len(suppliers)
        return
    bought = Supplier.model_validate(chosen.params["supplier"])
    assert quantity < 100
    assert chosen.amount <= min(100 * USDC, remaining * USDC, available * USDC - 200 * USDC)
    assert bought.owner != OWNER and bought.lower_bound is not None and bought.lower_bound >= 25
    best = max(o.value for o in decision.considered if o.action == "procure")
    assert chosen.value == best  # nothing feasible scored higher
    assert all(isinstance(o, Option) for o in decision.considered)
