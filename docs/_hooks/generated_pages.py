"""MkDocs hook: the site's pages that are generated at build time, so that none of them can drift.

- ``cli.md``: every command's and subcommand's ``--help``, rendered from ``nirstream.cli.build_parser`` (the
  parsers declare their arguments without heavy imports, so this takes well under a second);
- ``index.md``: the repository's README.md, its links into ``docs/`` made site-relative;
- ``reports.md``: reports/README.md (whose sections the benchmarks render from their JSON), headings one level down;
- ``runbook.md``: deploy/RUNBOOK.md (the alerts' ``runbook_url`` points at that file, so it stays where it is).

Files outside ``docs_dir`` are not served by MkDocs; generating them here keeps one copy of each text.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from mkdocs.structure.files import File

REPO = Path(__file__).resolve().parents[2]
HELP_WIDTH = "100"  # argparse wraps at $COLUMNS; a fixed width keeps the page the same on every machine
# README.md links to the repository's files; in the site the same texts live at these pages
SITE_PATHS = {"docs/": "", "reports/README.md": "reports.md", "deploy/RUNBOOK.md": "runbook.md"}
FENCE = re.compile(r"^```.*?^```", re.M | re.S)


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """(name, one-line help, parser) of each subcommand of ``parser``, in declaration order."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            found += [(name, helps.get(name, ""), sub) for name, sub in action.choices.items()]
    return found


def _walk(parser, path=()):
    yield path, parser
    for name, _, sub in _subcommands(parser):
        yield from _walk(sub, (*path, name))


def _anchor(path: tuple[str, ...]) -> str:
    return "-".join(("nirstream", *path))


def cli_page() -> str:
    from nirstream.cli import build_parser

    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_WIDTH
    try:
        parser = build_parser()
        lines = ["# Command-line reference", "",
                 "Generated from the command's own parsers (`nirstream.cli.build_parser`) when the site is built,",
                 "so it says what `nirstream COMMAND --help` says (every command has `--help`): the commands at a",
                 "glance, then each one's options.", "",
                 "| command | what it does |", "|---|---|"]
        for name, help_text, _ in _subcommands(parser):
            lines.append(f"| [`nirstream {name}`](#{_anchor((name,))}) | {help_text.replace('|', '&#124;')} |")
        for path, sub in _walk(parser):
            level = "#" * min(len(path) + 2, 4)
            lines += ["", f"{level} `{' '.join(('nirstream', *path))}` {{#{_anchor(path)}}}", "",
                      "```text", sub.format_help().rstrip(), "```"]
        return "\n".join(lines) + "\n"
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous


def _outside_code(text: str, change) -> str:
    """``change`` applied to the text between fenced code blocks only."""
    pieces, last = [], 0
    for block in FENCE.finditer(text):
        pieces += [change(text[last:block.start()]), block[0]]
        last = block.end()
    return "".join(pieces + [change(text[last:])])


def index_page() -> str:
    def site_links(prose: str) -> str:
        for repo_path, site_path in SITE_PATHS.items():
            prose = prose.replace(f"]({repo_path}", f"]({site_path}")
        return prose

    return _outside_code((REPO / "README.md").read_text(), site_links)


def reports_page() -> str:
    text = _outside_code((REPO / "reports/README.md").read_text(), lambda prose: re.sub(r"^#", "##", prose, flags=re.M))
    return ("# Benchmarks and reports\n\nThe measured comparisons behind every claim, each figure read from the JSON "
            "its benchmark wrote (`reports/README.md` in the repository; the marked sections are rendered by the "
            "benchmarks, see [Development](development.md)).\n\n" + text)


def runbook_page() -> str:
    return (REPO / "deploy/RUNBOOK.md").read_text()


PAGES = {"index.md": index_page, "cli.md": cli_page, "reports.md": reports_page, "runbook.md": runbook_page}


def on_files(files, config):
    for name, render in PAGES.items():
        files.append(File.generated(config, name, content=render()))
    return files


def on_serve(server, config, builder):
    for path in ("README.md", "reports/README.md", "deploy/RUNBOOK.md", "nirstream/cli.py"):
        server.watch(str(REPO / path))
    return server
