"""What a data directory (`STATESET_HOME`) holds besides each server's SQLite file, by name, and the rule that
only its owner reads it.

Plain names and the standard library only: the command line and the Claude Desktop entries name these files
without loading any server code.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

logger = logging.getLogger(__name__)

HOME_ID_FILE = "home.id"
"""A random name for this data directory, created on first run; it names where the keystore password is kept
outside it (servers.common.passwords). Not a secret: a copy of the directory carries it, but not the password."""
LEGACY_PASSWORD_FILE = "keystore.password"
"""Where releases before issue 12 kept the keystores' password, beside the keys it opens. Refused when present."""
SERVER_KEYSTORES = {"governance": "governance.keystore.json", "reputation": "reputation.keystore.json"}
"""The keys servers sign with for others to trust (approval receipts, slash orders), by role."""
ROTATIONS_SUFFIX = ".rotations.json"
"""Beside each server keystore, `<role>.rotations.json`: its retired keys and until when they still verify
(servers.common.rotation)."""
AUTHORITY_FILE = "authority.pem"
"""The mesh authority's token-signing key, locked with the keystore password, and its public half (0600)."""
REVOKED_FILE = "revoked.json"
"""The ids of revoked tokens, each kept until the token would have expired anyway."""
OPERATOR_TOKEN_FILE = "operator.token"
"""The operator's token, written by the first `stateset up` (0600)."""
KEY_FILES = ("*.keystore.json", "agent-*.json", "wallet.db", AUTHORITY_FILE)
"""Files that hold keys locked with the keystore password: the servers' and agents' keystores (agent.run names
an agent's `agent-<name>.json`), the wallets' keystores, in the wallet's database, and the mesh authority's key."""

_secured: set[Path] = set()


def holds_keys(home: Path) -> bool:
    """Whether anything in `home` is already locked with a keystore password."""
    return any(next(home.glob(pattern), None) is not None for pattern in KEY_FILES)


def secure_home(home: Path) -> list[str]:
    """Create `home` owner-only (0700), or make an existing one so: the directory, and every file and folder
    in it, loses any group and world permission. Returns what was loosened before (for the caller's log),
    empty when all was already owner-only. Checked once per process and directory.

    Tightening rather than refusing: everything in the directory is ours and none of it is meant for another
    user, so nothing a legitimate setup needs is lost, and the user is not left typing chmod commands we can
    run. What such a directory held may already have been copied; the caller says so.

    Raises:
        OSError: the directory cannot be created or its permissions cannot be changed (another user owns it).
    """
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    resolved = home.resolve()
    if resolved in _secured:
        return []
    loosened: list[str] = []
    _tighten(home, loosened)
    for folder, directories, files in os.walk(home):
        for name in [*directories, *files]:
            _tighten(Path(folder, name), loosened)
    _secured.add(resolved)
    return loosened


def _tighten(path: Path, loosened: list[str]) -> None:
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        return  # a link's own mode means nothing, and what it points to is not ours to change
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        os.chmod(path, mode & 0o700)
        loosened.append(f"{path.name} ({mode:o})")
