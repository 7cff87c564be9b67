"""Logging to stderr (stdout carries the stdio transport), with known secrets masked.

Code never logs a key, token or password on purpose; the mask is the second line of defence. Every
secret the process loads (the keystore password, bearer tokens) is registered with `register_secret`, and
any log record that would contain one has it replaced before it is written.
"""

from __future__ import annotations

import logging
import sys

_SECRETS: set[str] = set()
_MASK = "***"


def register_secret(value: str) -> None:
    """Mask `value` in every log record from now on. Short values are ignored: they would mask noise."""
    if len(value) >= 8:
        _SECRETS.add(value)


class SecretMask(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _SECRETS:
            message = record.getMessage()
            if any(secret in message for secret in _SECRETS):
                for secret in _SECRETS:
                    message = message.replace(secret, _MASK)
                record.msg, record.args = message, None
        return True


def configure_logging(level: str = "INFO") -> None:
    """Send every log record to stderr. Called once, from the command line entry point."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(SecretMask())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # uvicorn installs its own stdout handlers unless told otherwise; route it through ours.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    # At INFO, httpx logs every request (calls to peers would drown the server's own lines), and uvicorn and
    # the SDK's session managers announce every start and stop, the emulators' included; our own lines say
    # where things listen. DEBUG shows them all.
    if level == "INFO":
        for chatty in ("httpx2", "uvicorn.error", "mcp.server.streamable_http_manager"):
            logging.getLogger(chatty).setLevel(logging.WARNING)
