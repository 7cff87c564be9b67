"""The command line's start-up: what a host pays each time it launches `stateset`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import scaled

PROBE = """
import contextlib, json, sys
from agent.cli import main
with contextlib.redirect_stdout(open("/dev/null", "w")), contextlib.suppress(SystemExit):
    main(sys.argv[1:])
heavy = ("mcp", "eth_account", "eth_utils", "web3", "pydantic", "yaml", "uvicorn")
print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] in heavy)))
"""


@pytest.mark.parametrize("args", [["--help"], ["serve", "--help"], ["claude-config"], ["claude-config", "--gateway"]])
def test_help_and_claude_config_import_neither_mcp_nor_key_code(tmp_path: Path, args: list[str]) -> None:
    home = ["--home", str(tmp_path)] if args[0] == "claude-config" else []
    probe = subprocess.run(
        [sys.executable, "-c", PROBE, *args, *home], capture_output=True, text=True, timeout=scaled(60), check=True
    )
    assert json.loads(probe.stdout) == []
    assert not tmp_path.exists() or not any(tmp_path.iterdir())  # printing entries creates nothing


def test_serving_one_server_imports_no_chain_code_until_it_is_configured() -> None:
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from gateway.registry import opener; opener('wallet'); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'web3', 'eth_account', 'eth_abi', 'py_ecc'}))",
        ],
        capture_output=True,
        text=True,
        timeout=scaled(60),
        check=True,
    )
    assert probe.stdout.strip() == "[]"
