"""`lpzero` loads a command only when it runs: listing them imports neither torch nor transformers."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from lpzero.cli import COMMANDS, main


def modules_after(*args: str, succeed: bool = False) -> set[str]:
    """The modules loaded by `lpzero ARGS` run in a fresh interpreter; with `succeed`, its exit code must be 0."""
    code = ("import json, sys\nfrom lpzero.cli import main\n"
            f"try:\n    main({list(args)!r})\nexcept SystemExit as e:\n    assert not ({succeed!r} and e.code), e.code\n"
            "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def test_help_imports_no_command_and_no_torch():
    loaded = modules_after("--help")
    assert "torch" not in loaded and "transformers" not in loaded
    assert not any(m.startswith("lpzero.commands.") for m in loaded)


@pytest.mark.parametrize("command", ["ops", "export"])
def test_ops_and_export_need_no_transformers(command, tmp_path):
    args = ["ops"] if command == "ops" else ["export", str(tmp_path / "missing.json")]
    assert "transformers" not in modules_after(*args)


def test_every_listed_command_loads_and_its_help_matches_the_table():
    runner = CliRunner()
    for name, (_, help_text) in COMMANDS.items():
        result = runner.invoke(main, [name, "--help"])
        assert result.exit_code == 0, result.output
        assert " ".join(help_text.split())[:40] in " ".join(result.output.split())


def test_an_unknown_command_is_a_usage_error():
    result = CliRunner().invoke(main, ["nosuch"])
    assert result.exit_code == 2 and "No such command 'nosuch'" in result.output
