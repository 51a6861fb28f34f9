"""The code a user would paste from README.md and the documentation pages (docs/) works as written.

Python blocks that a test can run whole are run (the binary publisher against the embedded broker; chosen by their
content, so moving a block between pages keeps it tested); every ``nirstream ...`` line of a ``bash`` block is parsed
by the real command-line parser, so a renamed command or option fails here, not at a user's prompt.
"""

import argparse
import contextlib
import io
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from nirstream.cli import build_parser
from nirstream.core.messages.codec import decode_spectrum
from tests.streaming import collect, run

REPO = Path(__file__).resolve().parent.parent
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def blocks(language: str) -> list[tuple[Path, str]]:
    return [(document, block) for document in DOCUMENTS
            for block in re.findall(rf"^[ \t]*```{language}\n(.*?)^[ \t]*```", document.read_text(), flags=re.S | re.M)]


def python_blocks() -> list[str]:
    return [block for _, block in blocks("python")]


def test_publisher_example_produces_a_decodable_binary_spectrum(broker, tmp_path):
    block = next(b for b in python_blocks() if "def encode_binary" in b)
    script = tmp_path / "publisher.py"
    script.write_text(block.replace("127.0.0.1:9092", broker.bootstrap_servers))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    messages = run(collect(broker.bootstrap_servers, "nirstream.spectra", 1))
    spectrum = decode_spectrum(messages[-1].value)
    assert spectrum.header.analyzer_id == "line-1" and spectrum.header.grid.count == 650
    assert spectrum.values.shape == (650,)


def command_lines() -> list[tuple[str, str]]:
    """(page, command line) of every ``nirstream`` command in a bash block, continuation lines joined."""
    found = []
    for document, block in blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if line.startswith("nirstream "):
                found.append((str(document.relative_to(REPO)), line))
    return found


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return {name: sub for action in parser._actions if isinstance(action, argparse._SubParsersAction)
            for name, sub in action.choices.items()}


def refusal(parser: argparse.ArgumentParser, line: str) -> str | None:
    """Why the parser refuses ``line`` (None: accepted). A synopsis ``nirstream models list | show [V] | rollback``
    lists alternative subcommands of one command: each must name a subcommand of it."""
    first, *alternatives = line.split(" | ")
    words = shlex.split(first)[1:]
    if alternatives:
        parent = parser
        for word in words[:-1]:
            parent = subcommands(parent).get(word, parent)
        names = [words[-1]] + [alternative.split()[0] for alternative in alternatives]
        unknown = [name for name in names if name not in subcommands(parent)]
        return f"no subcommand {unknown}" if unknown else None
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            parser.parse_args(words)
    except SystemExit:
        return stderr.getvalue().strip().splitlines()[-1]
    return None


def test_every_command_line_in_the_pages_is_accepted_by_the_parser():
    parser = build_parser()
    lines = command_lines()
    assert len(lines) > 20  # the pages' examples were found
    refused = [f"{page}: {line}\n    {why}" for page, line in lines if (why := refusal(parser, line))]
    assert not refused, "\n".join(refused)


def test_the_check_refuses_an_unknown_option_and_subcommand():
    parser = build_parser()
    assert "unrecognized arguments: --no-such-option" in refusal(parser, "nirstream train --no-such-option")
    assert refusal(parser, "nirstream models list | show | frobnicate") == "no subcommand ['frobnicate']"
    assert refusal(parser, "nirstream models list | show | history") is None


@pytest.mark.parametrize("document", ["README.md"])
def test_the_front_page_names_the_two_commands(document):
    text = (REPO / document).read_text()
    assert "make demo" in text and "make test" in text and text.count("\n") < 200
