"""Every figure in a rendered section of reports/README.md comes from its benchmark's JSON: the section between a
benchmark's markers is exactly what its ``render_section`` makes of the JSON it wrote; and ``update_section`` replaces a
marked section in place, or appends it when the README has none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import (calibration_transfer, cnn_search, family_goal, install_sizes, operator_rule, peer_baselines,
                        prequential, region_selection, small_calibration, stream_throughput)
from benchmarks.report_sections import read_section, update_section

REPO = Path(__file__).resolve().parent.parent
README = REPO / "reports/README.md"


@pytest.mark.parametrize("module, result", [(calibration_transfer, "calibration-transfer.json"),
                                            (family_goal, "family-goal.json"),
                                            (prequential, "prequential.json"),
                                            (region_selection, "region-selection.json"),
                                            (small_calibration, "small-calibration.json"),
                                            (peer_baselines, "peer-baselines.json"),
                                            (operator_rule, "operator-rule.json"),
                                            (cnn_search, "cnn-search.json")])
def test_the_reports_section_is_the_one_its_json_renders(module, result):
    rendered = module.render_section(json.loads((REPO / "benchmarks/results" / result).read_text()))
    assert read_section(README, module.SECTION) == rendered.strip("\n")  # update_section writes it stripped


def test_the_install_page_sizes_are_the_ones_the_serving_install_check_wrote():
    rendered = install_sizes.render_section(json.loads((REPO / "benchmarks/results/serving-install.json").read_text()))
    assert read_section(REPO / "docs/install.md", install_sizes.SECTION) == rendered.strip("\n")


def test_the_worker_page_speed_table_is_the_one_the_stream_benchmark_wrote():
    rendered = stream_throughput.render_section(json.loads((REPO / "benchmarks/results/stream.json").read_text()))
    assert read_section(REPO / "docs/worker.md", stream_throughput.SECTION) == rendered.strip("\n")


def test_update_section_replaces_in_place_and_appends_when_absent(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# Intro\n\ntext\n\n<!-- a:begin (make a) -->\n\nold\n\n<!-- a:end -->\n\n# After\n")
    update_section(readme, "a", "new\n\n| x |")
    assert readme.read_text() == "# Intro\n\ntext\n\n<!-- a:begin (make a) -->\n\nnew\n\n| x |\n\n<!-- a:end -->\n\n# After\n"
    update_section(readme, "b", "appended", command="make b")
    assert readme.read_text().endswith("# After\n\n\n<!-- b:begin (make b) -->\n\nappended\n\n<!-- b:end -->\n")
    assert read_section(readme, "a") == "new\n\n| x |" and read_section(readme, "b") == "appended"
    assert read_section(readme, "c") is None
    with pytest.raises(ValueError):
        update_section(readme, "c", "no command for a new section")
