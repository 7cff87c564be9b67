"""A supplier's deployment file (configs/agents/supplier-*.yaml): what every agent has, and what it sells.

The file is an agent deployment file (agent.config.AgentConfig: name, card, wallet) with `type: supplier`, no
goals (a supplier answers calls rather than pursuing goals in the loop), and a `supplier:` section: its
catalogue (each item's unit price in USDC, the capacity it can deliver per period, its lead time) and how long
its quotes stay valid. It is checked as strictly as any deployment file: an unknown key is an error naming
the key path and the keys allowed there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, model_validator

from agent.config import AgentConfig, GoalConfig, Strict, config_error
from servers.common.money import UsdcAmount
from servers.common.settings import ConfigError

KIND = "supplier"
ITEM_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$"


class CatalogueItem(Strict):
    item: str = Field(pattern=ITEM_PATTERN, description="The item's id, e.g. the buyer's SAP material number")
    description: str
    unit: str = Field(default="PC", pattern=r"^[A-Z]{1,3}$", description="The unit of measure quantities count")
    unit_price: UsdcAmount = Field(description="USDC per unit")
    capacity: int = Field(ge=1, description="Units it can deliver per period")
    lead_time_days: int = Field(ge=0, le=365, description="Days from a quote to the earliest delivery date")


class SupplierTerms(Strict):
    trading_name: str = Field(min_length=1, max_length=64, description="The name buyers know it by")
    period_days: int = Field(default=7, ge=1, le=366, description="Capacity is per period of this many days")
    quote_validity_minutes: int = Field(ge=1, le=43_200, description="How long a quote can be ordered on")
    terms: str = Field(default="", max_length=500, description="Conditions every quote carries, in its terms hash")
    catalogue: list[CatalogueItem] = Field(min_length=1)

    @model_validator(mode="after")
    def _items_once(self) -> SupplierTerms:
        items = [entry.item for entry in self.catalogue]
        repeated = sorted({item for item in items if items.count(item) > 1})
        if repeated:
            raise ValueError(f"item {', '.join(repeated)} is listed more than once")
        return self

    def entry(self, item: str) -> CatalogueItem | None:
        return next((entry for entry in self.catalogue if entry.item == item), None)


class SupplierConfig(AgentConfig):
    goals: list[GoalConfig] = Field(default_factory=list, max_length=0, description="A supplier has none (yet)")
    supplier: SupplierTerms


def load_supplier_config(path: Path) -> SupplierConfig:
    """The supplier deployment file at `path`.

    Raises:
        ConfigError: naming the file, the key path and what is wrong there (for an unknown key, the keys allowed).
    """
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return parse_supplier_config(document, source=str(path))


def parse_supplier_config(document: Any, *, source: str = "the supplier's deployment file") -> SupplierConfig:
    """A supplier deployment file's content, checked as `load_supplier_config` checks the file.

    Raises:
        ConfigError: naming `source`, the key path and what is wrong there.
    """
    try:
        config = SupplierConfig.model_validate(document)
    except ValidationError as exc:
        raise config_error(source, SupplierConfig, exc) from None
    if config.type != KIND:
        raise ConfigError(f"{source}: type: {config.type!r} is not allowed in a supplier's file; use {KIND}")
    config._source = source
    return config
