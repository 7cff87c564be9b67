"""Every tool of the whole mesh (the in-process mesh `stateset up` runs) fed inputs drawn from its own input
schema, and the same inputs with one argument replaced by any JSON value, both directly and through the
aggregate gateway. Whatever comes in, the answer is a result, a clear tool error or an invalid-params
error: never a crash, an exception's name, pydantic's boilerplate, a hang or a dropped connection; and a
refused call changes nothing in any server's database or in the emulated Salesforce and SAP systems.

The inputs are drawn from the schemas the tools publish (tests.schema_values), so a new tool or argument
is fuzzed without editing this file. The mesh runs in a blocking portal (its own thread and event loop) so
that hypothesis drives it from an ordinary test function.
"""

from __future__ import annotations

import builtins
import copy
import json
import os
import re
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, closing
from pathlib import Path
from typing import Any

import anyio
import jsonschema
import mcp_types as types
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp.shared.exceptions import MCPError

from gateway.launcher import Mesh, running_mesh
from servers.common.settings import MeshSettings
from tests.conftest import ManualClock
from tests.helpers import scaled
from tests.schema_values import JSON, values

pytestmark = pytest.mark.slow

EXAMPLES_PER_TOOL = 16
CALL_DEADLINE = scaled(20)  # seconds; far above any answer, so that only a hang reaches it
# Answers that betray a crash or leak internals: exception class names, pydantic's banner and links.
EXCEPTION_NAMES = sorted(
    name for name, value in vars(builtins).items() if isinstance(value, type) and issubclass(value, BaseException)
)
LEAKS = re.compile(
    r"\b(" + "|".join(EXCEPTION_NAMES) + r"|ValidationError|Traceback|Internal server error)\b"
    r"|validation errors? for|errors\.pydantic\.dev|\[type=|input_value=|For further information"
)


class Stage:
    """The running mesh, two in-memory clients of every server and of the aggregate, and a way to see
    all the state it keeps."""

    def __init__(self, portal: BlockingPortal, mesh: Mesh, home: Path) -> None:
        self.portal, self.mesh, self.home = portal, mesh, home
        self.clients: dict[str, Client] = {}
        self.outcomes: Counter[tuple[str, str]] = Counter()  # (tool, "accepted" | "refused")
        self.unsettled = True  # an accepted call may still be echoing through peer servers

    def call(self, via: str, tool: str, arguments: dict[str, Any]) -> tuple[str, Any]:
        """("result", CallToolResult), ("protocol", MCPError) or ("crash", the exception), within the deadline."""

        async def attempt() -> tuple[str, Any]:
            try:
                with anyio.fail_after(CALL_DEADLINE):
                    return "result", await self.clients[via].call_tool(tool, arguments)
            except MCPError as exc:
                return "protocol", exc
            except Exception as exc:  # a hang (TimeoutError), a dropped connection, ...: all failures here
                return "crash", exc

        outcome: tuple[str, Any] = self.portal.call(attempt)
        return outcome

    def state(self) -> dict[str, Any]:
        """Every row of every server's database, and the records of the emulated platforms."""
        tables: dict[str, Any] = {}
        for path in sorted(self.home.rglob("*.db")):
            with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
                names = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
                for name in names:
                    if name not in NOISE.get(path.stem, ()):
                        rows = db.execute(f'SELECT * FROM "{name}"').fetchall()
                        tables[f"{path.stem}.{name}"] = sorted(map(repr, rows))
        org, system = self.mesh.apps["salesforce"].org, self.mesh.apps["sap"].system
        platforms = json.dumps([org.records, system.orders, system.items, system.stock], default=str, sort_keys=True)
        return {"tables": tables, "platforms": platforms}

    def settled_state(self) -> dict[str, Any]:
        """The state once changes that follow an accepted call (a peer server catching up) have landed: the
        same for QUIET_CHECKS looks in a row, 20 ms apart."""
        previous, quiet = self.state(), 0
        deadline = time.monotonic() + scaled(10)
        while self.unsettled and quiet < QUIET_CHECKS:
            assert time.monotonic() < deadline, "the mesh's state kept changing with no call"
            self.portal.call(anyio.sleep, 0.02)
            current = self.state()
            quiet = quiet + 1 if current == previous else 0
            previous = current
        self.unsettled = False
        return previous


# How long the state must stay the same after an accepted call before a refused one is checked against it.
QUIET_CHECKS = 5

# Rows that change with time, not with calls: the adapters' polling watermarks.
NOISE = {"salesforce": ("watermarks",)}


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    home = tmp_path_factory.mktemp("fuzz")
    environ = dict(os.environ) | {"STATESET_HOME": str(home), "STATESET_LOG_LEVEL": "WARNING"}
    mesh_settings = MeshSettings.from_env(environ, home=home)
    with start_blocking_portal(backend="asyncio") as portal, ExitStack() as clients:
        mesh = clients.enter_context(
            portal.wrap_async_context_manager(running_mesh(mesh_settings, environ, clock=ManualClock()))
        )
        assert portal.call(mesh.gateway.wait_ready, scaled(30))
        stage = Stage(portal, mesh, home)
        for name, target in {"mesh": mesh.aggregate, **mesh.servers}.items():
            stage.clients[name] = clients.enter_context(portal.wrap_async_context_manager(Client(target)))
        yield stage


def with_one_value_replaced(arguments: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    keys = sorted(arguments) or ["unexpected"]
    return st.tuples(st.sampled_from(keys), JSON).map(lambda swap: {**arguments, swap[0]: swap[1]})


def check_answer(tool: str, kind: str, answer: Any) -> bool:
    """Assert the answer is a clean one; True when the call was refused."""
    if kind == "crash":
        raise AssertionError(f"{tool}: the call failed with {type(answer).__name__}: {answer}")
    if kind == "protocol":
        assert answer.code == types.INVALID_PARAMS, f"{tool}: protocol error {answer.code}: {answer.message}"
        assert not LEAKS.search(answer.message), f"{tool}: {answer.message}"
        return True
    assert isinstance(answer, types.CallToolResult)
    text = " ".join(getattr(block, "text", "") for block in answer.content)
    if answer.is_error:
        assert not LEAKS.search(text), f"{tool}: {text}"
        assert not re.fullmatch(r"(\[\w+\] )?Error executing tool \w+", text), f"{tool} crashed: {text}"
    return bool(answer.is_error)


def fuzz_tool(stage: Stage, name: str, schema: dict[str, Any]) -> None:
    backend, _, tool = name.partition("_")
    valid = values(schema)
    validator = jsonschema.Draft202012Validator(schema)

    @settings(
        max_examples=EXAMPLES_PER_TOOL,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )
    @given(arguments=valid, replaced=st.booleans(), via=st.sampled_from(["mesh", backend]), data=st.data())
    def run(arguments: dict[str, Any], replaced: bool, via: str, data: st.DataObject) -> None:
        assert validator.is_valid(arguments), f"schema_values drew {arguments!r}, which {name}'s schema refuses"
        if replaced:
            arguments = data.draw(with_one_value_replaced(arguments))
        before = stage.settled_state()
        kind, answer = stage.call(via, name if via == "mesh" else tool, copy.deepcopy(arguments))
        refused = check_answer(name, kind, answer)
        stage.outcomes[name, "refused" if refused else "accepted"] += 1
        stage.unsettled = not refused
        if refused:
            assert stage.state() == before, f"{name} refused {arguments!r} but changed the mesh's state"

    run()


def test_every_tool_answers_any_input_clearly_and_a_refusal_changes_nothing(stage: Stage) -> None:
    tools = stage.portal.call(stage.clients["mesh"].list_tools).tools
    assert len(tools) >= 40, [tool.name for tool in tools]  # all six servers are up and listed
    for tool in tools:
        fuzz_tool(stage, tool.name, tool.input_schema)
    accepted = sorted(tool for (tool, outcome), count in stage.outcomes.items() if outcome == "accepted")
    # Most tools act on something that exists (a wallet, a decision, an agent): random ids are refused, which
    # is the path under test. Some tools must still accept, or the inputs never got past the argument checks.
    assert len(accepted) >= 6, f"of {sum(stage.outcomes.values())} calls, only these tools accepted any: {accepted}"
