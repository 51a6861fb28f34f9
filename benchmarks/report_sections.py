"""Sections of a README that a benchmark renders from its JSON, between markers

    <!-- NAME:begin (COMMAND) -->
    ...
    <!-- NAME:end -->

``update_section`` replaces the text between a section's markers (or appends the marked section at the end of the file
when it has none); ``read_section`` returns it, so a test can check that the README says what the JSON renders.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from pathlib import Path


def begin_marker(name: str, command: str) -> str:
    return f"<!-- {name}:begin ({command}) -->"


def end_marker(name: str) -> str:
    return f"<!-- {name}:end -->"


def _span(text: str, name: str) -> tuple[int, int, int, int] | None:
    """(start of the begin marker, end of it, start of the end marker, end of it), or None when the section is absent."""
    begin = re.search(rf"^<!-- {re.escape(name)}:begin \(.*\) -->$", text, flags=re.MULTILINE)
    if begin is None:
        return None
    end = text.find(end_marker(name), begin.end())
    if end < 0:
        raise ValueError(f"section {name!r}: begin marker without {end_marker(name)}")
    return begin.start(), begin.end(), end, end + len(end_marker(name))


def read_section(readme_path: Path, name: str) -> str | None:
    """The text between the section's markers, without the blank lines around it; None when it has no markers."""
    text = Path(readme_path).read_text()
    span = _span(text, name)
    return None if span is None else text[span[1]:span[2]].strip("\n")


def update_section(readme_path: Path, name: str, text: str, command: str | None = None) -> None:
    """Put ``text`` between the section's markers; keep the section's place and its marker's command when it exists
    (``command`` replaces the latter when given), else append it at the end of the file."""
    readme_path = Path(readme_path)
    current = readme_path.read_text() if readme_path.exists() else ""
    span = _span(current, name)
    if span is None:
        if command is None:
            raise ValueError(f"section {name!r} is new: its marker needs the command that renders it")
        block = f"{begin_marker(name, command)}\n\n{text.strip(chr(10))}\n\n{end_marker(name)}"
        updated = (current.rstrip("\n") + "\n\n\n" if current.strip() else "") + block + "\n"
    else:
        begin = begin_marker(name, command) if command is not None else current[span[0]:span[1]]
        updated = current[:span[0]] + f"{begin}\n\n{text.strip(chr(10))}\n\n" + current[span[2]:]
    readme_path.write_text(updated)
    print(f"updated {readme_path} (section {name})")


def benchmark_parser(doc: str, output: str, section: str, **arguments: dict) -> argparse.ArgumentParser:
    """A benchmark's command line: its description (the docstring's first paragraph), ``--output`` (the JSON),
    ``arguments`` (name -> ``add_argument`` keywords, in order) and the section arguments."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    for name, keywords in arguments.items():
        parser.add_argument(f"--{name.replace('_', '-')}", **keywords)
    parser.add_argument("--output", type=Path, default=Path(output))
    add_section_arguments(parser, section)
    return parser


def add_section_arguments(parser: argparse.ArgumentParser, section: str) -> None:
    """``--readme`` and ``--render-only``, the same for every benchmark that renders a section."""
    parser.add_argument("--readme", type=Path, help=f"rewrite this README's {section} section from the JSON")
    parser.add_argument("--render-only", action="store_true", help="run nothing: render --readme from the existing --output")


def render_only(args: argparse.Namespace, parser: argparse.ArgumentParser, section: str,
                render: Callable[[dict], str], command: str) -> bool:
    """With ``--render-only``: write the section from ``args.output`` and return True (the caller runs nothing)."""
    if not args.render_only:
        return False
    if not args.readme:
        parser.error("--render-only needs --readme")
    update_section(args.readme, section, render(json.loads(args.output.read_text())), command)
    return True


def parse_or_render(doc: str, output: str, section: str, command: str, render: Callable[[dict], str],
                    argv: list[str] | None, **arguments: dict) -> argparse.Namespace | None:
    """A benchmark's parsed arguments, or None after ``--render-only`` rendered its section (nothing to run)."""
    parser = benchmark_parser(doc, output, section, **arguments)
    args = parser.parse_args(argv)
    return None if render_only(args, parser, section, render, command) else args
