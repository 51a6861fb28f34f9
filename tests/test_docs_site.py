"""The documentation site builds in strict mode (a broken link, anchor or nav entry fails), and its generated
command-line page covers every command and subcommand of the parsers.

MkDocs comes with the ``dev`` extra; without it these tests skip locally and fail under CI=true.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nirstream.cli import build_parser

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "mkdocs.yml"


def mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess:
    missing = [name for name in ("mkdocs", "material") if importlib.util.find_spec(name) is None]
    if missing:
        message = f"{' and '.join(missing)} not installed (the dev extra installs them)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message} (CI=true: the site must build)")
        pytest.skip(message)
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
                          capture_output=True, text=True, timeout=180, cwd=config.parent,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("site")
    result = mkdocs_build(CONFIG, site)
    assert result.returncode == 0, result.stderr
    return site


def nav_pages(nav) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in nav_pages(value)]
    return [page for entry in nav for page in nav_pages(entry)]


def test_every_page_is_built_and_every_docs_page_is_in_the_nav(site):
    config = yaml.load(CONFIG.read_text(), Loader=yaml.BaseLoader)  # plain YAML, no MkDocs tags here
    pages = nav_pages(config["nav"])
    written = {str(p.relative_to(REPO / "docs")) for p in (REPO / "docs").rglob("*.md")}
    generated = {"index.md", "cli.md", "reports.md", "runbook.md"}  # docs/_hooks/generated_pages.py
    assert written | generated == set(pages)
    assert all((site / Path(page).with_suffix("") / "index.html").exists() or page == "index.md" for page in pages)
    assert (site / "index.html").exists()


def test_the_cli_page_has_every_command_and_subcommand(site):
    html = (site / "cli" / "index.html").read_text()

    def walk(parser, path):
        yield path
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from walk(sub, (*path, name))

    commands = list(walk(build_parser(), ("nirstream",)))
    assert len(commands) > 20
    missing = [" ".join(path) for path in commands if f'id="{"-".join(path)}"' not in html]
    assert not missing, missing
    assert "--promote-margin" in html and "--watch" in html  # the options themselves, not only the names


def test_strict_mode_with_these_settings_refuses_a_broken_link_and_anchor(tmp_path):
    settings = yaml.load(CONFIG.read_text(), Loader=yaml.BaseLoader)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.md").write_text("# Home\n\n[gone](missing.md), [no such part](other.md#nowhere)\n")
    (tmp_path / "docs" / "other.md").write_text("# Other\n")
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump({
        "site_name": "check", "strict": True, "validation": settings["validation"],
        "nav": ["index.md", "other.md"], "theme": {"name": "mkdocs"}}))
    result = mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert result.returncode != 0
    assert "missing.md" in result.stderr and "nowhere" in result.stderr


def test_the_readmes_links_resolve_in_the_repository_too():
    """README.md is read on the repository's host as well as in the site (where the hook rewrites its links)."""
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", (REPO / "README.md").read_text())
    local = [target for target in targets if "://" not in target]
    assert local and not [target for target in local if not (REPO / target).exists()]
