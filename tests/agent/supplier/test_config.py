"""The suppliers' deployment files: checked as strictly as any agent's, and consistent with the demo's listings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.supplier.config import load_supplier_config, parse_supplier_config
from agent.workflows import load_agent_config
from servers.common.money import parse_usdc
from servers.common.settings import ConfigError
from tests.agent.supplier.conftest import CONFIGS, FRAMES

# What agent/demo.py lists each supplier at in discovery: USDC per lot (the procurement goal's order quantity).
LISTED = {"Budget Frames": "60", "Frame Works": "80", "Premium Frames": "95"}


def document(name: str = "supplier-frame-works.yaml") -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((CONFIGS / name).read_text())
    return loaded


def test_the_three_suppliers_agree_with_their_listings() -> None:
    lot = int(load_agent_config(CONFIGS / "procurement.yaml").goals[1].params["order_quantity"])
    files = sorted(CONFIGS.glob("supplier-*.yaml"))
    configs = [load_supplier_config(path) for path in files]
    assert {config.supplier.trading_name for config in configs} == set(LISTED)
    for config in configs:
        frames = config.supplier.entry(FRAMES)
        assert config.type == "supplier" and frames is not None
        assert config.price == parse_usdc(LISTED[config.supplier.trading_name]) == frames.unit_price * lot
        assert config.description.startswith(config.supplier.trading_name)
    # each quotes differently: price, lead time, capacity
    assert len({(c.supplier.catalogue[0].unit_price, c.supplier.catalogue[0].lead_time_days) for c in configs}) == 3


def test_an_unknown_key_is_named_with_the_keys_allowed_there() -> None:
    broken = document()
    broken["supplier"]["catalogue"][0]["leadtime"] = 3
    with pytest.raises(ConfigError) as caught:
        parse_supplier_config(broken, source="x.yaml")
    message = str(caught.value)
    assert message.startswith("x.yaml: supplier.catalogue.0.leadtime: unknown key; allowed here: item, description")
    assert "lead_time_days" in message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d["supplier"]["catalogue"][0].update(unit_price=0.32), "supplier.catalogue.0.unit_price"),
        (lambda d: d["supplier"]["catalogue"][0].update(capacity=0), "supplier.catalogue.0.capacity"),
        (lambda d: d["supplier"].update(quote_validity_minutes=0), "supplier.quote_validity_minutes"),
        (lambda d: d.update(type="procurement"), "type: 'procurement' is not allowed in a supplier's file"),
        (lambda d: d["supplier"]["catalogue"].append(dict(d["supplier"]["catalogue"][0])), "listed more than once"),
        (lambda d: d.pop("supplier"), "supplier: Field required"),
        (lambda d: d.update(goals=[{"id": "x", "kind": "y", "description": "z"}]), "goals"),
    ],
)
def test_a_wrong_value_is_named_by_its_key_path(change: Any, expected: str) -> None:
    broken = document()
    change(broken)
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(".", r"\.")):
        parse_supplier_config(broken, source="x.yaml")


def test_a_file_that_is_not_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "supplier-x.yaml"
    path.write_text("name: [unclosed")
    with pytest.raises(ConfigError, match=str(path)):
        load_supplier_config(path)
