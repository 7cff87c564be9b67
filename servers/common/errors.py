"""The error tree shared by every server.

    MeshError                 a mistake the caller could have avoided; becomes an MCP tool error
    ├── InvalidInputError     a value that is malformed or outside what is allowed
    ├── NotFoundError         an id or address that names nothing here
    ├── ConflictError         a request that contradicts what already happened (reused key, spent receipt)
    └── StorageError          the data store failed; the message is generic, the details are logged

`MeshError` subclasses the SDK's `ToolError` on purpose: the SDK reports a `ToolError` raised anywhere in
a tool as an `is_error` result carrying our message, and masks every other exception as a crash. Deriving
from it lets the pure core raise domain errors without knowing about MCP, and keeps one error plane.

Messages are written for the model that called the tool: the value that broke the rule and what is
allowed, never a key, a password, a stack or SQL.
"""

from __future__ import annotations

from mcp.server.mcpserver.exceptions import ToolError


class MeshError(ToolError):
    """A failure the caller could have avoided. `hint` says what would work instead."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message}; {hint}" if hint else message)


class InvalidInputError(MeshError, ValueError):
    """A value is malformed or outside the allowed range."""


class NotFoundError(MeshError, LookupError):
    """An identifier names nothing known to this server."""


class ConflictError(MeshError):
    """The request contradicts recorded state: a reused idempotency key, a spent receipt, a second signature."""


class StorageError(MeshError):
    """The data store failed. Raised with a generic message; the cause is logged, never returned."""

    def __init__(self, message: str = "the data store failed; retry the call") -> None:
        super().__init__(message)
