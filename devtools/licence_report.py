"""``python -m nirstream.devtools.licence_report``: the licence of every runtime dependency of nirstream, read from
the installed distributions' metadata, and the check that none of them carries a GPL or AGPL licence.

A dependency's licence is, in this order: its ``License-Expression`` (SPDX, PEP 639), a one-line ``License`` field,
its ``License ::`` classifiers, or the head of its licence file. An SPDX ``OR`` is the user's choice (the most
permissive side counts), ``AND`` binds them all (the most restrictive counts).

Categories: *permissive*; *weak copyleft* (LGPL, MPL, EPL, a GPL with a linking exception): allowed, since
nirstream uses such a library unmodified, as a separately installed distribution, which these licences permit
under any licence of the program that imports it; *strong copyleft* (GPL, AGPL, CeCILL): refused, since they would
extend to nirstream and to the plant software that embeds it; *unknown*: refused until someone reads the terms.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from nirstream.devtools.dependencies import PROJECT, Dependency, dependency_tree, find, runtime_extras

PERMISSIVE, WEAK, UNKNOWN, STRONG = "permissive", "weak copyleft", "unknown", "strong copyleft"
RANK = {PERMISSIVE: 0, WEAK: 1, UNKNOWN: 2, STRONG: 3}
REFUSED = frozenset({STRONG, UNKNOWN})
COMMITTED = Path(__file__).resolve().parents[1] / "docs/licences.md"

# Checked in order on one licence name (an SPDX identifier or free text): the first pattern that matches decides.
_PATTERNS = [
    (WEAK, re.compile(r"LGPL|Lesser General Public|Library General Public|\bMPL\b|Mozilla|\bEPL\b|Eclipse Public|"
                      r"CDDL|CeCILL-C", re.I)),
    (STRONG, re.compile(r"AGPL|Affero|\bGPL|General Public License|CeCILL(?!-B)|\bEUPL\b|\bOSL\b|SSPL", re.I)),
    (PERMISSIVE, re.compile(r"\bMIT\b|BSD|CeCILL-B|Apache|PSF|Python Software Foundation|\bISC\b|Zlib|Unlicense|CC0|HPND|"
                            r"Repoze|Public Domain|BSL-1|Boost|Historical Permission", re.I)),
]
# Licence files whose first lines name them: (what to call it, pattern)
_FILE_HEADS = [
    ("AGPL", re.compile(r"GNU AFFERO GENERAL PUBLIC LICENSE", re.I)),
    ("LGPL", re.compile(r"GNU LESSER GENERAL PUBLIC LICENSE|GNU LIBRARY GENERAL PUBLIC", re.I)),
    ("GPL", re.compile(r"GNU GENERAL PUBLIC LICENSE", re.I)),
    ("MPL-2.0", re.compile(r"Mozilla Public License", re.I)),
    ("Apache-2.0", re.compile(r"Apache License,?\s+Version 2\.0", re.I)),
    ("MIT", re.compile(r"\bMIT License\b|Permission is hereby granted, free of charge", re.I)),
    ("BSD", re.compile(r"Redistribution and use in source and binary forms", re.I)),
]
_NOT_A_LICENCE = {"OSI Approved", "DFSG approved"}


def name_category(name: str) -> str:
    """The category of one licence name; a GPL with a linking exception (``WITH GCC-exception-3.1``) is weak."""
    licence, _, exception = name.partition(" WITH ")
    for category, pattern in _PATTERNS:
        if pattern.search(licence):
            if category == STRONG and "exception" in exception.lower():
                return WEAK
            return category
    return UNKNOWN


def expression_category(expression: str) -> str:
    """The category of an SPDX-style expression: ``OR`` takes the most permissive side, ``AND`` the most
    restrictive; words between operators form one licence name, so free text such as "GNU Lesser General Public
    License v3 or later" (lower-case "or") stays one name, and text that does not parse is read as one name."""
    tokens = re.findall(r"\(|\)|[^\s()]+", expression)
    position = 0

    def peek() -> str | None:
        return tokens[position] if position < len(tokens) else None

    def joined(operator: str, operand, pick) -> str:
        nonlocal position
        category = operand()
        while peek() == operator:
            position += 1
            category = pick(category, operand(), key=RANK.__getitem__)
        return category

    def either() -> str:  # a choice: the most permissive side counts
        return joined("OR", both, min)

    def both() -> str:  # all of them apply: the most restrictive counts
        return joined("AND", one, max)

    def one() -> str:
        nonlocal position
        if peek() == "(":
            position += 1
            category = either()
            if peek() != ")":
                raise ValueError(expression)
            position += 1
            return category
        words = []
        while peek() not in (None, "(", ")", "AND", "OR"):
            words.append(tokens[position])
            position += 1
        if not words:
            raise ValueError(expression)
        return name_category(" ".join(words))

    try:
        category = either()
    except ValueError:
        category = None
    if category is None or position != len(tokens):  # not an expression, e.g. "BSD-derived (Repoze)": one name
        return name_category(expression)
    return category


@dataclass(frozen=True)
class Licence:
    text: str  # what the metadata says, shortened to one line
    source: str  # which field said it
    category: str


def _from_licence_text(text: str, source: str) -> Licence | None:
    head = "\n".join(text.strip().splitlines()[:40])
    for name, pattern in _FILE_HEADS:
        if pattern.search(head):
            return Licence(name, source, expression_category(name))
    return None


def licence_of(distribution: metadata.Distribution) -> Licence:
    """What the installed metadata says about ``distribution``'s licence (see the module's docstring)."""
    fields = distribution.metadata
    expression = (fields.get("License-Expression") or "").strip()
    if expression:
        return Licence(expression, "License-Expression", expression_category(expression))
    text = (fields.get("License") or "").strip()
    if text and "\n" not in text and len(text) <= 100:
        return Licence(text, "License", expression_category(text))
    classifiers = [c.split(" :: ")[-1] for c in fields.get_all("Classifier") or [] if c.startswith("License ::")]
    classifiers = [c for c in classifiers if c not in _NOT_A_LICENCE]
    if classifiers:  # several classifiers may mean either "and" or "or": read as "and", the cautious reading
        category = max((name_category(c) for c in classifiers), key=RANK.__getitem__)
        return Licence(" / ".join(classifiers), "classifiers", category)
    found = _from_licence_text(text, "License") if text else None
    for file in fields.get_all("License-File") or []:
        content = distribution.read_text(f"licenses/{file}") or distribution.read_text(file)
        found = found or (_from_licence_text(content, f"licence file {file}") if content else None)
    return found or Licence("(none declared)", "-", UNKNOWN)


@dataclass(frozen=True)
class Row:
    dependency: Dependency
    licence: Licence


def report(root: str = PROJECT, extras: Iterable[str] | None = None,
           path: Sequence[str] | None = None) -> tuple[tuple[str, ...], list[Row]]:
    """The extras walked (default: every runtime extra of ``root``) and one row per dependency, sorted by name;
    a dependency that is not installed is unknown (nothing can be read about it)."""
    if extras is None:
        extras = runtime_extras(find(root, path) or metadata.distribution(root))
    extras = tuple(extras)
    rows = [Row(d, licence_of(d.distribution) if d.distribution else Licence("(not installed)", "-", UNKNOWN))
            for d in dependency_tree(root, extras, path)]
    return extras, sorted(rows, key=lambda row: row.dependency.name)


def refused(rows: Iterable[Row]) -> list[Row]:
    return [row for row in rows if row.licence.category in REFUSED]


def render(extras: Sequence[str], rows: Sequence[Row]) -> str:
    """The generated Markdown file: one table row per dependency."""
    lines = [
        "# Licences of nirstream's runtime dependencies",
        "",
        "Generated by `python -m nirstream.devtools.licence_report --write`; do not edit by hand. It lists every",
        "distribution that a serving or training install of nirstream pulls in (Requires-Dist followed recursively,",
        "markers evaluated on the machine that wrote it, the dev and benchmark extras left out), with the licence",
        "its installed metadata declares. `tests/test_licences.py` checks that this file names every dependency",
        "nirstream declares and that each licence still falls in the category shown; the versions are those",
        "installed when the file was written, and the licences of newer releases are checked in CI on every run.",
        "",
        f"Extras walked: {', '.join(extras) or 'none (nirstream declares no runtime extra)'}. "
        f"Refused: GPL, AGPL and licences that cannot be read; allowed: permissive and weak copyleft "
        f"(LGPL, MPL), see `devtools/licence_report.py` for why.",
        "",
        "| distribution | version | licence | declared in | category | required by |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        d, licence = row.dependency, row.licence
        text = licence.text.replace("|", "/")
        lines.append(f"| {d.name} | {d.version} | {text} | {licence.source} | {licence.category} | {d.required_by} |")
    return "\n".join(lines) + "\n"


def parse(markdown: str) -> dict[str, str]:
    """A generated file's categories by distribution name (the inverse of ``render`` for what the test compares)."""
    rows = [line.split("|")[1:-1] for line in markdown.splitlines() if line.startswith("| ") and "---" not in line]
    return {cells[0].strip(): cells[4].strip() for cells in rows[1:]}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nirstream.devtools.licence_report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--extra", action="append", dest="extras", metavar="NAME",
                        help="walk this extra of nirstream too (repeatable; default: every runtime extra)")
    parser.add_argument("--write", nargs="?", const=COMMITTED, type=Path, metavar="FILE",
                        help=f"write the Markdown list (default {COMMITTED.relative_to(COMMITTED.parents[1])})")
    args = parser.parse_args(argv)
    extras, rows = report(extras=args.extras)
    if args.write:
        args.write.write_text(render(extras, rows))
        print(f"wrote {args.write}")
    weak = [row for row in rows if row.licence.category == WEAK]
    print(f"{len(rows)} runtime dependencies; weak copyleft (allowed): "
          + (", ".join(f"{r.dependency.name} ({r.licence.text})" for r in weak) or "none"))
    bad = refused(rows)
    for row in bad:
        print(f"REFUSED {row.dependency.name} {row.dependency.version}: {row.licence.text} ({row.licence.category}, "
              f"{row.licence.source}; required by {row.dependency.required_by})", file=sys.stderr)
    if not bad:
        print("no runtime dependency carries a GPL or AGPL licence")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
