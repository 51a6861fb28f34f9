"""The installed ``nirstream`` entry point: every command's --help, and the data commands."""

import argparse
import subprocess
import sys

import pytest

from nirstream.cli import build_parser


def _command_paths(parser: argparse.ArgumentParser, prefix=()) -> list[tuple[str, ...]]:
    paths = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                paths.extend(_command_paths(sub, (*prefix, name)))
    return paths


COMMANDS = _command_paths(build_parser())


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nirstream", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "nirstream")
def test_every_command_has_help(command):
    result = run_cli(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: nirstream")
    assert len(result.stdout.splitlines()) > 3


def test_data_info_describes_tecator():
    result = run_cli("data", "info", "tecator")
    assert result.returncode == 0, result.stderr
    assert "215 x 100 channels" in result.stdout
    assert "split:       test (43)" in result.stdout


def test_errors_are_clear_and_exit_2(tmp_path):
    result = run_cli("data", "info", "nosuchset")
    assert result.returncode == 2
    assert "nirstream: error: unknown data set 'nosuchset'" in result.stderr
    assert "Traceback" not in result.stderr
