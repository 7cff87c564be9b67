"""What the wallet pays to know whose receipts it trusts, per receipt, and how that grows with rotations.

    .venv/bin/python bench/key_trust.py [--rounds 20000] [--rotations 0,1,10,100]

Every approval receipt and slash order the wallet checks asks `WalletSettings.trusted(role, chain_id)` for the
keys it accepts (servers.wallet.trust). Three figures, side by side in one run on a data directory with a real
governance keystore:

- before: what the wallet did before rotations existed (read the keystore file and parse its address on every
  check); the floor the new check is compared with;
- now, unchanged files: a stat of the keystore and of the rotation records, then the lineage already worked
  out (the case of every receipt but the first after a rotation);
- now, after a rotation: the records read again (paid once per rotation, by the first receipt after it), the
  handovers verified before remembered; and the first check in a process, which verifies every handover's two
  signatures (about a millisecond each handover); for a home with 0, 1, 10, 100 rotations.

Prints medians in microseconds and the ratio of each to the floor.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from eth_account import Account

from servers.common import rotation
from servers.common.home import SERVER_KEYSTORES
from servers.common.identity import Signer, parse_address
from servers.common.keystore import encrypt_account, stored_address
from servers.common.rotation import append_rotation, rotations_path, sign_rotation
from servers.wallet.settings import WalletSettings

CHAIN = 31337
STAMPS = itertools.count(1)  # modification times that differ at every call


def median_us(work: Callable[[], object], rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        work()
        samples.append(time.perf_counter_ns() - start)
    return statistics.median(samples) / 1000


def home_with(rotations: int, folder: Path) -> WalletSettings:
    home = Path(tempfile.mkdtemp(prefix=f"rotations-{rotations}-", dir=folder))
    keys = [Signer(Account.create()) for _ in range(rotations + 1)]
    keystore = home / SERVER_KEYSTORES["governance"]
    keystore.write_text(encrypt_account(Account.create(), "bench-password", scrypt_n=2**10))
    for i in range(rotations):
        handover = sign_rotation(keys[i], keys[i + 1], CHAIN, retired_at=i, verifies_until=i + 660)
        append_rotation(rotations_path(keystore), handover)
    return WalletSettings(home=home)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20_000)
    parser.add_argument("--rotations", default="0,1,10,100")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        settings = home_with(0, Path(scratch))
        assert settings.home is not None
        keystore = settings.home / SERVER_KEYSTORES["governance"]

        def before() -> object:
            return parse_address(stored_address(keystore), field=str(keystore))

        floor = median_us(before, args.rounds)
        cached = median_us(lambda: settings.trusted("governance", CHAIN), args.rounds)
        print(f"{'check':<44}{'median µs':>12}{'× floor':>10}")
        print(f"{'before: read + parse the keystore each time':<44}{floor:>12.1f}{1:>10.2f}")
        print(f"{'now, files unchanged (2 stats)':<44}{cached:>12.1f}{cached / floor:>10.2f}")
        for count in (int(n) for n in args.rotations.split(",")):
            settings = home_with(count, Path(scratch))

            assert settings.home is not None
            replaced = settings.home / SERVER_KEYSTORES["governance"]

            def changed(settings: WalletSettings = settings, replaced: Path = replaced) -> object:
                os.utime(replaced, ns=(next(STAMPS), next(STAMPS)))  # as after a rotation: the records read again
                return settings.trusted("governance", CHAIN)

            def first(settings: WalletSettings = settings) -> object:
                rotation._authentic.cache_clear()  # a new process: no handover verified yet
                return changed(settings)

            for label, work, rounds in (
                (f"after a rotation, {count} rotations", changed, max(50, args.rounds // max(1, 10 * count))),
                (f"first check in a process, {count} rotations", first, max(10, args.rounds // max(1, 200 * count))),
            ):
                cost = median_us(work, rounds)
                print(f"{label:<44}{cost:>12.1f}{cost / floor:>10.2f}")
    print(f"(pid {os.getpid()}, {args.rounds} rounds a figure where unchanged)")


if __name__ == "__main__":
    main()
