"""Bounded work per request, across the whole mesh (the in-process mesh `stateset up` runs): every free-form
tool input publishes its bound, an oversized value is refused naming the field, its size and the limit, and
every resource template checks its parameters as the tools check the same argument, before any of them
reaches a store or an upstream URL."""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from eth_account import Account
from mcp import Client
from mcp.shared.exceptions import MCPError

from gateway.launcher import Mesh, running_mesh
from servers.common.identity import new_agent_did
from servers.common.settings import MeshSettings
from tests.agents import MeshAgent
from tests.helpers import refused, scaled

pytestmark = pytest.mark.anyio

# A JSON Schema pattern is a bound only when no part of it repeats without limit.
UNBOUNDED_REPEAT = re.compile(r"(?<!\\)[*+]|\{\d*,\}")


@pytest.fixture
async def mesh(tmp_path: Path) -> AsyncIterator[Mesh]:
    environ = dict(os.environ) | {"STATESET_HOME": str(tmp_path), "STATESET_LOG_LEVEL": "WARNING"}
    async with running_mesh(MeshSettings.from_env(environ, home=tmp_path), environ) as running:
        assert await running.gateway.wait_ready(scaled(30))
        yield running


def unbounded(schema: Any, root: dict[str, Any], path: str) -> list[str]:
    """The paths under `schema` where a value of any size is accepted and no bound is declared."""
    if not isinstance(schema, dict):
        return [path] if schema is True else []
    if " bytes" in schema.get("description", ""):  # a bound in bytes, checked by the server (JSON Schema has none)
        return []
    if "$ref" in schema:
        return unbounded(root["$defs"][schema["$ref"].removeprefix("#/$defs/")], root, path)
    if "anyOf" in schema or "oneOf" in schema:
        return [found for option in schema.get("anyOf", schema.get("oneOf")) for found in unbounded(option, root, path)]
    if "enum" in schema or "const" in schema:
        return []
    kinds = schema.get("type")
    if kinds is None:
        return [path]
    found: list[str] = []
    for kind in kinds if isinstance(kinds, list) else [kinds]:
        if kind == "string":
            pattern = schema.get("pattern")
            if "maxLength" not in schema and (pattern is None or UNBOUNDED_REPEAT.search(pattern)):
                found.append(path)
        elif kind == "array":
            found += [] if "maxItems" in schema else [path]
            found += unbounded(schema.get("items", True), root, f"{path}[]")
        elif kind == "object":  # a model's fields, or a map (dict) of free keys
            for name, value in schema.get("properties", {}).items():
                found += unbounded(value, root, f"{path}.{name}")
            extra = schema.get("additionalProperties", "properties" not in schema)
            if extra is not False and not ("properties" in schema and extra is True):  # a model ignores extras
                keys = {"type": "string"} | schema.get("propertyNames", {})  # keys are text, typed or not
                found += [] if "maxProperties" in schema or "enum" in keys else [f"{path}.*"]
                found += unbounded(keys, root, f"{path} (keys)")
                found += unbounded(extra, root, f"{path}.*")
    return found


async def test_every_free_form_tool_input_publishes_its_bound(mesh: Mesh) -> None:
    """Strings have a length or a bounded pattern, lists and maps a count, free-form JSON a size in bytes: in
    the input schema every client and the gateway see. Before, memo was the only bounded free text."""
    found: list[str] = []
    async with Client(mesh.aggregate) as client:
        tools = (await client.list_tools()).tools
        assert len(tools) >= 40, [tool.name for tool in tools]
        for tool in tools:
            found += unbounded(tool.input_schema, tool.input_schema, tool.name)
    assert found == [], "\n".join(found)


PAYER, PAYEE = Account.create().address, Account.create().address
AGENT = new_agent_did()
SKILL = {"id": "s", "name": "skill", "description": "d" * 2000, "tags": [], "examples": ["e" * 2000] * 16}
CARD = MeshAgent("bulky", ["supplier_quotes"]).card().model_dump(mode="json") | {"skills": [SKILL] * 64}
OVERSIZED: list[tuple[str, dict[str, Any], str]] = [
    (
        "governance_evaluate_action",
        {"agent_id": AGENT, "action": {"type": "payment", "amount": "1", "payload": {"blob": "x" * 100_000}}},
        "payload is 100011 bytes as JSON; at most 16384 bytes are accepted",
    ),
    (
        "wallet_execute_payment",
        {"from_address": PAYER, "to_address": PAYEE, "amount": "1", "memo": "m" * 300},
        "memo 'mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm… holds 300 characters; "
        "at most 256 characters are accepted",
    ),
    (
        "wallet_sign_proposal",
        {"proposal_id": "prop_1", "signer": PAYER, "signature": "0x" + "ab" * 50_000},
        "signature '0xabababababababababababababababababababababababababababab… holds 100002 characters; "
        "at most 132 characters are accepted",
    ),
    (
        "reputation_record_interaction",
        {
            "agent_id": AGENT,
            "rater_id": new_agent_did(),
            "interaction_id": "t",
            "outcomes": {"reliability": 90},
            "signature": "0x" + "00" * 65,
            "evidence": {"log": "x" * 50_000},
        },
        "evidence is 50010 bytes as JSON; at most 16384 bytes are accepted",
    ),
    (
        "discovery_register_agent",
        {"card": CARD, "signature": "0x" + "00" * 65},
        "card is 2184101 bytes as JSON; at most 65536 bytes are accepted",
    ),
    (
        "salesforce_create_record",
        {"sobject": "Lead", "fields": {"LastName": "x" * 300_000}},
        "fields is 300015 bytes as JSON; at most 262144 bytes are accepted",
    ),
    (
        "sap_update_purchase_order",
        {"id": "4500000001", "changes": {"items": [{"item": "10", "quantity": "1"}] * 1000}},
        "changes.items [{'item': '10', 'quantity': '1'}, {'item': '10', 'quantity'… holds 1000 items; "
        "at most 999 items are accepted",
    ),
]


@pytest.mark.parametrize(("tool", "arguments", "says"), OVERSIZED, ids=[case[0] for case in OVERSIZED])
async def test_an_oversized_value_is_refused_naming_the_field_its_size_and_the_limit(
    mesh: Mesh, tool: str, arguments: dict[str, Any], says: str
) -> None:
    backend, _, name = tool.partition("_")
    async with Client(mesh.servers[backend]) as client:
        assert says in await refused(client, name, **arguments)


MARKER = "zq9"
INJECTED = (  # quotes and OData syntax, plain and percent-encoded (a query, a path): no upstream URL may carry them
    f"{MARKER}'),A_PurchaseOrder('1",
    f"{MARKER}%27%29%3F%24top%3D1",
    f"{MARKER}%2F..%2F..%2Fquery",
)


def upstream_requests(mesh: Mesh) -> list[str]:
    """Every request the emulated Salesforce and SAP received, as text."""
    org, system = mesh.apps["salesforce"].org, mesh.apps["sap"].system
    return [json.dumps(request) for request in [*org.requests, *system.requests]]


async def test_every_resource_template_refuses_a_malformed_parameter_before_it_goes_anywhere(mesh: Mesh) -> None:
    """Each `{parameter}` of each template gets quotes, a query string and OData syntax: the answer is the
    invalid-params error naming the parameter, and no upstream request carries the value (the SAP adapter
    once put it inside A_PurchaseOrder('...'), the Salesforce adapter into /sobjects/{sobject}/{id})."""
    checked = 0
    for name, server in mesh.servers.items():
        async with Client(server) as client:
            for template in (await client.list_resource_templates()).resource_templates:
                parameters = re.findall(r"\{(\w+)\}", template.uri_template)
                for parameter, injected in itertools.product(parameters, INJECTED):
                    uri = template.uri_template
                    for other in parameters:
                        uri = uri.replace(f"{{{other}}}", injected if other == parameter else "Lead")
                    with pytest.raises(MCPError) as caught:
                        await client.read_resource(uri)
                    assert [request for request in upstream_requests(mesh) if MARKER in request] == [], uri
                    assert caught.value.code == types.INVALID_PARAMS, (name, uri, caught.value.message)
                    checked += 1
    assert checked >= 9 * len(INJECTED)
