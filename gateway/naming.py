"""How the aggregate names a backend's tools and prompts: `<server>_<tool>`, at most 64 characters.

A name depends only on the server's name and the tool's, never on which other servers are connected,
so adding a server changes no existing name. A name that would pass 64 characters keeps its first 55
and ends with `_` and 8 hex digits of SHA-256 of the full name: still unique, still stable.
"""

from __future__ import annotations

import hashlib
import re

MAX_NAME = 64
_HASHED_PREFIX = MAX_NAME - 9  # room for "_" and 8 hex digits
_SERVER = re.compile(r"[a-z][a-z0-9-]{0,30}")


def check_server_name(name: str) -> str:
    """Server names are lowercase words (a-z, 0-9, -), so `<server>_` always ends at the first underscore."""
    if _SERVER.fullmatch(name) is None:
        raise ValueError(f"server name {name!r} must be lowercase letters, digits and -, starting with a letter")
    return name


def qualified(server: str, name: str) -> str:
    full = f"{server}_{name}"
    if len(full) <= MAX_NAME:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    return f"{full[:_HASHED_PREFIX]}_{digest}"


def server_of(qualified_name: str) -> str | None:
    """The server part of a qualified name (server names hold no underscore)."""
    server, separator, _ = qualified_name.partition("_")
    return server if separator else None
