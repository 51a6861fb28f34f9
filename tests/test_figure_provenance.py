"""No result figure in README.md or reports/README.md is typed by hand.

A *figure* is a number with a decimal point (``4.77``, ``0.5``, ``1.1e-6``) or a percentage (``93 %``). Outside the
generated sections (between ``benchmarks/report_sections.py`` markers, which ``tests/test_report_sections.py`` checks
against what each script renders from its JSON), outside fenced code blocks and outside inline code (commands,
settings, message examples), every figure must either

- appear, at the precision shown, in a JSON result file that the same paragraph names (``benchmarks/results/x.json``,
  or a bare ``x.json`` under ``reports/`` or ``benchmarks/results/``); a percentage may be stored as a fraction; or
- sit inside one of the few phrases of ``NOT_RESULTS``: settings, nominal levels and protocol constants that no
  experiment produced, each with the reason it is not a result.

A paragraph is a block between blank lines; each item of a bulleted list is a paragraph of its own; a table belongs
to the paragraph just before it (its caption).
"""

from __future__ import annotations

import glob
import json
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCUMENTS = ["README.md", "reports/README.md"]

# (phrase, why its numbers are not results). A phrase is matched literally; every figure inside it is allowed.
NOT_RESULTS: list[tuple[str, str]] = [
    ("arXiv:1710.01927", "the cited paper's arXiv identifier"),
    ("Python 3.11", "the Python version the project supports"),
    ("95 % limit", "the nominal level of the T²/Q warning limit: a setting"),
    ("99 % limit", "the nominal level of the T²/Q outlier limit: a setting"),
    ("below 1 % of the", "the input screen's thresholds for degenerate spectra: settings"),
    ("(0.5 s doubling to 15 s)", "the file bridge's retry back-off: a setting"),
    ("95 % bootstrap interval", "the confidence level of every bootstrap interval: a setting"),
    ("(default 0.9)", "the prediction intervals' default nominal coverage: a setting"),
    ("no 90 % interval", "the nominal coverage that too few spectra cannot calibrate: a setting"),
    ("~1.23 M weights", "the paper network's parameter count: a property of the architecture, not a measurement"),
    ("`gate.confidence` | 0.95", "the gate's default confidence: a setting"),
    ("> 5 % of messages rejected", "the dead-letter alert's threshold (deploy/prometheus/rules): a setting"),
]

GENERATED = re.compile(r"^<!-- (?P<name>[\w-]+):begin \(.*?\) -->$.*?^<!-- (?P=name):end -->$", re.M | re.S)
FENCED = re.compile(r"^[ \t]*```.*?^[ \t]*```", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")
# a decimal (not one part of a version such as 3.11.2 or 0.6.0) or a percentage, sign left out
FIGURE = re.compile(r"(?<![\w.])(?P<number>\d+(?:\.\d+)?(?:e[-+−]?\d+)?)(?![\w.]*\.\d)(?P<percent>\s?%)?")
JSON_NAME = re.compile(r"[\w./*-]+\.json\b")


def prose(text: str) -> str:
    """The document without its generated sections and fenced blocks (each replaced by a blank line)."""
    for pattern in (GENERATED, FENCED):
        text = pattern.sub("\n\n", text)
    return text


def paragraphs(text: str) -> list[str]:
    """Blocks between blank lines; a bulleted list split into its items."""
    blocks: list[str] = []
    for block in re.split(r"\n\s*\n", text):
        if block.lstrip().startswith("|") and blocks:  # a table belongs with the paragraph that introduces it
            blocks[-1] += "\n" + block
            continue
        blocks += [item for item in re.split(r"\n(?=\s*(?:[-*]|\d+\.) )", block) if item.strip()]
    return blocks


def figures(paragraph: str) -> list[re.Match]:
    """The figures of a paragraph outside the phrases of ``NOT_RESULTS`` and outside inline code."""
    for phrase, _ in NOT_RESULTS:
        paragraph = paragraph.replace(phrase, " " * len(phrase))
    paragraph = INLINE_CODE.sub(lambda code: " " * len(code[0]), paragraph)
    return [m for m in FIGURE.finditer(paragraph) if "." in m["number"] or m["percent"]]


def named_results(paragraph: str, document: Path) -> list[Path]:
    found = []
    for name in JSON_NAME.findall(paragraph):
        for folder in (REPO, document.parent, REPO / "benchmarks/results"):
            found += [Path(p) for p in sorted(glob.glob(str(folder / name)))]
    return found


def numbers_in(value) -> list[float]:
    """Every number a JSON file holds, also those its script wrote inside a string."""
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [float(value)]
    if isinstance(value, str):
        return [float(n) for n in re.findall(r"\d+(?:\.\d+)?(?:e[-+]?\d+)?", value)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in numbers_in(v)]
    if isinstance(value, list):
        return [n for v in value for n in numbers_in(v)]
    return []


def shown(number: float, text: str) -> bool:
    """Whether ``number`` displays as ``text`` at ``text``'s precision."""
    if "e" in text:
        mantissa = text.split("e")[0]
        decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
        return f"{abs(number):.{decimals}e}".replace("e-0", "e-") == text.replace("−", "-")
    decimals = len(text.split(".")[1]) if "." in text else 0
    return f"{abs(number):.{decimals}f}" == text


def unbacked(document: str) -> list[str]:
    path = REPO / document
    problems = []
    for paragraph in paragraphs(prose(path.read_text())):
        found = figures(paragraph)
        if not found:
            continue
        values = [n for result in named_results(paragraph, path) for n in numbers_in(json.loads(result.read_text()))]
        for match in found:
            text = match["number"].replace("−", "-")
            candidates = values + [100 * v for v in values] if match["percent"] else values
            if not any(shown(v, text) for v in candidates):
                context = paragraph[max(0, match.start() - 50):match.end() + 30].replace("\n", " ")
                problems.append(f"{document}: {match[0]!r} in …{context}…")
    return problems


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_figure_comes_from_a_json_the_paragraph_names(document):
    problems = unbacked(document)
    assert not problems, f"{len(problems)} figures no named JSON backs:\n" + "\n".join(problems)


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_result_file_the_documents_name_exists(document):
    text = (REPO / document).read_text()
    named = {n for n in JSON_NAME.findall(text) if n.startswith(("benchmarks/results/", "reports/"))}
    missing = [n for n in named if not glob.glob(str(REPO / n))]
    assert not missing, missing


def test_the_check_catches_a_typed_figure_and_accepts_a_backed_one(tmp_path, monkeypatch):
    (tmp_path / "r.json").write_text(json.dumps({"rmsep": 4.7671, "coverage": 0.9348}))
    (tmp_path / "README.md").write_text(
        "Backed: 4.77 mg and 93 % in `r.json`, see r.json.\n\nTyped: 4.78 mg.\n\n```\n9.99 in a code block\n```\n\n"
        "<!-- s:begin (make s) -->\n\n1.23 generated\n\n<!-- s:end -->\n\nA list:\n- 4.77 named r.json\n- 4.77 not\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    problems = unbacked("README.md")
    assert [p.split("'")[1] for p in problems] == ["4.78", "4.77"], problems


def test_every_allowed_phrase_is_still_used():
    text = "\n".join(prose((REPO / document).read_text()) for document in DOCUMENTS)
    assert [phrase for phrase, _ in NOT_RESULTS if phrase not in text] == []
