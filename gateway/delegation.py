"""The gateway calls its backends on behalf of its callers, never with its own authority.

For each call the gateway asks the mesh authority for a short-lived token for the caller, at that backend:
the caller's subject and scopes (never more), the backend as audience, and the gateway as actor (`act`, as in
an RFC 8693 token exchange). It travels in the call's `_meta`; the backend's gate honours it only on a
connection whose own principal is this gateway and holds `mesh:delegate`, and then serves the call as the caller.
So a caller gains nothing through the gateway that it lacks directly, and the gateway's own token moves no money.
Tokens are kept per caller and backend until a minute before they expire.

Only the mesh's own servers (which trust the same authority) are called this way; another MCP server behind
the gateway sees the credential its configuration names, whoever the caller.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from servers.common.auth import DELEGATION_META_KEY, DELEGATION_SECONDS, Authority, IssuedToken, Principal
from servers.common.gate import transport_principal

REUSE_MARGIN_SECONDS = 60


class Delegation:
    def __init__(self, authority: Authority, actor: Principal, servers: Mapping[str, str]) -> None:
        """`servers`: the backends that act for the gateway's callers, each with the mesh server it is (the
        audience of the tokens it takes)."""
        self.authority = authority
        self.actor = actor
        self.servers = dict(servers)
        self._issued: dict[tuple[str, str | None, frozenset[str], str], IssuedToken] = {}

    def meta(self, backend: str) -> dict[str, Any] | None:
        """The `_meta` that makes `backend` serve the current call as its caller; None when the gateway calls
        for itself (following change logs, listing catalogs)."""
        caller = transport_principal()
        if caller is None or caller.did == self.actor.did or backend not in self.servers:
            return None
        key = (caller.did, caller.token_id, caller.scopes, backend)
        issued = self._issued.get(key)
        now = self.authority.clock()
        if issued is None or issued.expires_at - now < REUSE_MARGIN_SECONDS:
            lifetime = DELEGATION_SECONDS
            if caller.expires_at is not None:  # never outlive the caller's own token
                lifetime = min(lifetime, int(caller.expires_at - now))
            if lifetime <= 0:
                return None
            if len(self._issued) > 10_000:
                self._issued.clear()
            audience = self.servers[backend]
            issued = self.authority.issue(caller.did, caller.scopes, lifetime, audience=audience, actor=self.actor.did)
            self._issued[key] = issued
        return {DELEGATION_META_KEY: issued.token}
