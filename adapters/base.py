"""What every enterprise adapter offers, whatever platform is behind it, and how platforms fail.

    PlatformAdapter     authenticate, read_data, write_data, execute_action, subscribe_to_events
    PlatformEvent       a change on the platform, in CloudEvents 1.0 shape

Errors are tool errors (servers.common.errors.MeshError), so an MCP tool surfaces them as they are:

    AdapterError
    ├── PlatformRejectedError   the platform answered with an error: its codes, messages and fields
    ├── PlatformUnavailableError the platform could not be reached, or kept failing after retries
    ├── OutcomeUnknownError     a write was sent and no answer came: it may or may not have happened
    └── AuthenticationError     the configured credentials were refused
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel, Field

from servers.common.errors import MeshError


class PlatformEvent(BaseModel):
    """A CloudEvents 1.0 event: `type` says what happened, `subject` to which record."""

    specversion: str = "1.0"
    id: str
    source: str
    type: str
    subject: str
    time: datetime
    datacontenttype: str = "application/json"
    data: dict[str, Any] = Field(description="The platform's own payload, e.g. a Salesforce ChangeEventHeader")


class PlatformAdapter(Protocol):
    """The seed's adapter interface, implemented by adapters.salesforce and adapters.sap."""

    platform: str

    async def authenticate(self) -> None:
        """Obtain (or renew) the session; raises AuthenticationError when refused."""

    async def read_data(self, entity: str, key: str | None = None, query: Mapping[str, Any] | None = None) -> Any:
        """One record by key, or the records a query selects."""

    async def write_data(self, entity: str, data: Mapping[str, Any], key: str | None = None) -> Any:
        """Create a record (no key) or change one (key)."""

    async def execute_action(self, action: str, params: Mapping[str, Any]) -> Any:
        """A named business action: create_lead, create_purchase_order, ..."""

    def subscribe_to_events(self) -> AsyncIterator[PlatformEvent]:
        """Changes on the platform as they happen, until the iterator is closed."""


@dataclass(frozen=True)
class ErrorDetail:
    code: str
    message: str
    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        where = f" (fields: {', '.join(self.fields)})" if self.fields else ""
        return f"{self.code}: {self.message}{where}"


class AdapterError(MeshError):
    """Something about the platform the caller should know."""


class PlatformRejectedError(AdapterError):
    def __init__(self, platform: str, status: int, details: list[ErrorDetail], *, hint: str | None = None) -> None:
        self.platform, self.status, self.details = platform, status, details
        described = "; ".join(str(detail) for detail in details) or f"HTTP {status}"
        super().__init__(f"{platform} refused the request (HTTP {status}): {described}", hint=hint)


class PlatformUnavailableError(AdapterError):
    pass


class OutcomeUnknownError(AdapterError):
    pass


class AuthenticationError(AdapterError):
    pass
