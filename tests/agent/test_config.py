"""Deployment files: every mapping refuses keys it does not know, naming the file, the key path and the keys
allowed there; goals are checked against the goal kinds of the agent's type."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from agent.config import AgentConfig
from agent.demo import AGENT_CONFIG
from agent.workflows import load_agent_config
from servers.common.settings import ConfigError

SHIPPED = yaml.safe_load(AGENT_CONFIG.read_text())


def mappings(node: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], dict[str, Any]]]:
    """Every mapping in the document, with its key path."""
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from mappings(value, (*path, key))
    elif isinstance(node, list):
        for n, item in enumerate(node):
            yield from mappings(item, (*path, n))


def written(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def refusal(tmp_path: Path, document: Any) -> str:
    path = written(tmp_path, document)
    with pytest.raises(ConfigError) as refused:
        load_agent_config(path)
    message = str(refused.value)
    assert message.startswith(f"{path}: "), message
    return message


def test_the_shipped_file_loads_with_its_params_as_their_kinds_write_them() -> None:
    config = load_agent_config(AGENT_CONFIG)
    assert config.source == str(AGENT_CONFIG) and config.type == "procurement"
    params = {goal.id: goal.params for goal in config.goals}
    assert params["reserve"] == {"minimum": "200"}
    assert params["frames"]["max_price"] == "100" and params["frames"]["lead_time_days"] == 7
    assert params["acme-deal"]["supplied_by"] == "frames"


@pytest.mark.parametrize("where", [path for path, _ in mappings(SHIPPED)], ids=lambda p: ".".join(map(str, p)) or "top")
def test_a_misspelled_key_in_any_mapping_is_refused_naming_the_path_and_the_keys_allowed(
    tmp_path: Path, where: tuple[str | int, ...]
) -> None:
    document = copy.deepcopy(SHIPPED)
    node = document
    for part in where:
        node = node[part]
    allowed = set(node)
    node["minimun"] = "200"
    message = refusal(tmp_path, document)
    key_path = ".".join(str(part) for part in (*where, "minimun"))
    assert f": {key_path}: unknown key; allowed here: " in message
    listed = set(message.split("allowed here: ")[1].split(";")[0].split(", "))
    assert allowed <= listed and "minimun" not in listed  # every key the file uses, and the optional ones too


def test_a_misspelled_required_key_is_named_before_the_one_it_leaves_missing(tmp_path: Path) -> None:
    document = copy.deepcopy(SHIPPED)
    document["goals"][0]["params"] = {"minimun": "200"}
    message = refusal(tmp_path, document)
    assert message.endswith(
        "goals.0.params.minimun: unknown key; allowed here: minimum; goals.0.params.minimum: Field required"
    )


def test_a_misspelled_optional_param_is_refused_where_it_would_have_been_ignored(tmp_path: Path) -> None:
    document = copy.deepcopy(SHIPPED)
    frames = document["goals"][1]["params"]
    frames["max_prize"] = frames.pop("max_price")
    message = refusal(tmp_path, document)
    assert "goals.1.params.max_prize: unknown key" in message
    assert "max_price" in message and "lead_time_days" in message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d.update(type="wholesaler"), "type: 'wholesaler' is not an agent kind; allowed: procurement"),
        (lambda d: d["goals"][0].update(kind="hoard"), "goals.0.kind: 'hoard' is not a goal kind of a procurement"),
        (lambda d: d["goals"][0]["params"].pop("minimum"), "goals.0.params.minimum: Field required"),
        (lambda d: d["goals"][0]["params"].update(minimum="-5"), "goals.0.params.minimum: "),
        (lambda d: d["goals"][2]["params"].update(supplied_by="wheels"), "goals.2.params.supplied_by: 'wheels' is not"),
        (lambda d: d.pop("sap"), "goals.1: a replenish_stock goal needs a `sap:` section"),
        (lambda d: d["goals"].append(copy.deepcopy(d["goals"][0])), "goals.0.id: 'reserve' is used by more than one"),
        (lambda d: d["wallet"].pop("daily_limit"), "wallet.daily_limit: Field required"),
    ],
)
def test_a_goal_or_section_that_does_not_fit_its_kind_is_refused(tmp_path: Path, change: Any, expected: str) -> None:
    document = copy.deepcopy(SHIPPED)
    change(document)
    assert expected in refusal(tmp_path, document)


def test_a_file_that_is_not_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("name: [unclosed")
    with pytest.raises(ConfigError, match=str(path)):
        load_agent_config(path)


def test_every_mapping_of_the_schema_refuses_unknown_keys() -> None:
    """Not only the ones the shipped file uses: every model under AgentConfig forbids extras."""
    seen: set[type] = set()
    stack: list[type] = [AgentConfig]
    while stack:
        model = stack.pop()
        if model in seen:
            continue
        seen.add(model)
        assert model.model_config.get("extra") == "forbid", model  # type: ignore[attr-defined]
        for field in model.model_fields.values():  # type: ignore[attr-defined]
            for inner in _models(field.annotation):
                stack.append(inner)
    assert len(seen) >= 5


def _models(annotation: Any) -> Iterator[type]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in getattr(annotation, "__args__", ()):
        yield from _models(arg)
