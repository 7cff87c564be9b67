"""`python -m servers.wallet [options]` is `stateset serve wallet [options]`."""

import sys

from gateway.cli import main

sys.exit(main(["serve", "wallet", *sys.argv[1:]]))
