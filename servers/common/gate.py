"""The gate before every server's tools: whose call this is, whether its scopes allow the tool, and whether the
thing it names is its own.

Each server declares, for every tool, the scope it needs (or None: any known principal), and the gate refuses a
call whose principal lacks it before the arguments are even read; `tools/list` shows a principal only the tools
it may call. Ownership cannot be decided from the tool's name: tools ask `may_act_for` (an `agent_id` argument
must be the caller unless it holds the admin scope) or compare a stored owner with `caller()`.

Refusals are protocol errors (-32003, forbidden): no retry by the model can help, and they change no state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError

from servers.common.auth import (
    DELEGATION_META_KEY,
    MESH_AUDIENCE,
    Principal,
    TrustRoot,
    connection_principal,
    current_principal,
    principal_of,
    process_principal,
    serving,
)

# JSON-RPC leaves -32000..-32099 to implementations; this one means "not allowed".
FORBIDDEN = -32003

ToolScopes = Mapping[str, str | None]
"""Tool name → the scope a caller needs (None: any authenticated principal)."""


def forbidden(message: str) -> MCPError:
    return MCPError(FORBIDDEN, message)


class Gate:
    """Server middleware: resolves the call's principal, checks the tool's scope, and serves the call as it."""

    def __init__(self, server: str, scopes: ToolScopes, trust: TrustRoot | None = None) -> None:
        self.server = server
        self.scopes = scopes
        self.trust = trust  # checks tokens the gateway passes in `_meta` for the callers it acts for

    def check_declared(self, tools: list[str]) -> None:
        """Every tool must say what it needs: a tool with no scope would be open to everyone."""
        undeclared = sorted(set(tools) - set(self.scopes))
        if undeclared:
            raise RuntimeError(f"the {self.server} server declares no scope for {', '.join(undeclared)}")

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if (
            ctx.method in ("initialize", "notifications/initialized", "ping", "server/discover")
            or ctx.request_id is None
        ):
            return await call_next(ctx)
        principal = self._principal(ctx.meta)
        if principal is None:
            raise forbidden(f"the {self.server} server does not know who is calling: send a bearer token")
        name = (ctx.params or {}).get("name") if ctx.method == "tools/call" else None
        if isinstance(name, str) and name in self.scopes:
            needed = self.scopes[name]
            if needed is not None and not principal.has(needed):
                raise forbidden(f"{name} needs the {needed} scope; {principal.did} does not hold it")
        with serving(principal):
            result = await call_next(ctx)
        if ctx.method == "tools/list" and isinstance(result, dict):
            result = {**result, "tools": [tool for tool in result.get("tools", []) if self._allows(principal, tool)]}
        return result

    def _allows(self, principal: Principal, tool: Any) -> bool:
        name = tool.get("name") if isinstance(tool, dict) else getattr(tool, "name", None)
        needed = self.scopes.get(str(name), "")
        # the gateway lists for its callers (and each of their calls is checked as theirs)
        return needed is None or principal.has(needed) or principal.has("mesh:delegate")

    def _principal(self, meta: Mapping[str, Any] | None) -> Principal | None:
        principal = transport_principal()
        delegation = (meta or {}).get(DELEGATION_META_KEY)
        if delegation is None or principal is None:
            return principal
        if not principal.has("mesh:delegate"):
            raise forbidden(f"{principal.did} may not act on behalf of others (it lacks mesh:delegate)")
        if self.trust is None or not isinstance(delegation, str):
            raise forbidden("the token of the principal acted for cannot be checked here")
        delegated = self.trust.verify(delegation, (self.server,))
        if delegated is None or delegated.actor != principal.did:
            raise forbidden(
                f"the token {principal.did} presented for its caller is not valid for the {self.server} server"
            )
        return delegated


def transport_principal() -> Principal | None:
    """Who is on the other end: an in-process connection's principal (a server calling a peer, the gateway calling
    a backend, even while serving an HTTP request of someone else), else the HTTP request's bearer token, else the
    process's principal (the host of a stdio server, `--no-auth`)."""
    connection = connection_principal()
    if connection is not None:
        return connection
    access = get_access_token()
    return principal_of(access) if access is not None else process_principal()


def caller() -> Principal:
    """The principal of the call being served.

    Raises:
        MCPError: FORBIDDEN outside a gated call (a server built without its gate).
    """
    principal = current_principal()
    if principal is None:
        raise forbidden("no principal for this call")
    return principal


def require(scope: str) -> Principal:
    principal = caller()
    if not principal.has(scope):
        raise forbidden(f"this needs the {scope} scope; {principal.did} does not hold it")
    return principal


def may_act_for(did: str | None, admin_scope: str) -> Principal:
    """The caller, if `did` is itself or the caller holds `admin_scope`."""
    principal = caller()
    if did != principal.did and not principal.has(admin_scope):
        raise forbidden(f"{principal.did} may not act for {did}: only {did} itself, or a holder of {admin_scope}")
    return principal


def owns(owner: str | None, admin_scope: str, what: str) -> Principal:
    """The caller, if it owns `what` (stored `owner`) or holds `admin_scope`."""
    principal = caller()
    if owner != principal.did and not principal.has(admin_scope):
        raise forbidden(f"{what} belongs to {owner or 'no one'}, not {principal.did}; only its owner or {admin_scope}")
    return principal


__all__ = ["FORBIDDEN", "MESH_AUDIENCE", "Gate", "ToolScopes", "caller", "forbidden", "may_act_for", "owns", "require"]
