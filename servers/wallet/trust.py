"""Whose signatures the wallet accepts: approval receipts from governance's keys, slash orders from reputation's.

For each role, a lineage of keys (servers.common.rotation): from the address the wallet was configured with
(`STATESET_<ROLE>_ADDRESS`), or else from the key in the data directory, through the rotations recorded there,
plus the retired keys configured (`STATESET_<ROLE>_RETIRED_KEYS`). Checked at every receipt, so a rotation made
while the wallet runs counts at once; the files are read again only when one of them was replaced (a stat each).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from servers.common.errors import InvalidInputError
from servers.common.identity import parse_address
from servers.common.keystore import stored_address
from servers.common.rotation import TrustedKeys, file_stamp, lineage, read_rotations, rotations_path

logger = logging.getLogger(__name__)

_known: dict[Path, tuple[object, TrustedKeys | None]] = {}


def trusted_keys(
    keystore: Path | None, *, pinned: str | None, retired: Mapping[str, int], chain_id: int
) -> TrustedKeys | None:
    """The keys trusted for one role; None when there is neither a configured address nor a key at `keystore`."""
    if keystore is None:
        return None if pinned is None else lineage(pinned, [], chain_id, retired=retired)
    rotations = rotations_path(keystore)
    state = (pinned, sorted(retired.items()), chain_id, file_stamp(keystore), file_stamp(rotations))
    known = _known.get(keystore)
    if known is not None and known[0] == state:
        return known[1]
    anchor = pinned or _stored(keystore)
    trusted = None if anchor is None else lineage(anchor, read_rotations(rotations), chain_id, retired=retired)
    _known[keystore] = (state, trusted)
    return trusted


def _stored(keystore: Path) -> str | None:
    stored = stored_address(keystore)
    try:
        return None if stored is None else parse_address(stored, field=str(keystore))
    except InvalidInputError:
        logger.warning("%s names no valid address; its key is not trusted", keystore)
        return None
