"""The install sizes section of docs/install.md, rendered from the serving install check's JSON. Runs nothing:

    python -m nirstream.devtools.serving_install_check --write         (the check, on every CPython found; writes the JSON)
    python benchmarks/install_sizes.py --readme docs/install.md --render-only

tests/test_report_sections.py checks that the page says what the JSON renders.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.report_sections import parse_or_render  # noqa: E402

SECTION, SECTION_COMMAND = "install-sizes", "benchmarks/install_sizes.py --readme docs/install.md --render-only"


def render_section(result: dict) -> str:
    """One row per serving environment checked, and the training environment measured once."""
    rows = ["| environment (CPython) | site-packages | distributions | serves an ONNX and a PLS bundle, no heavy import |",
            "|---|---|---|---|"]
    for python in result["pythons"]:
        if not python.get("installed"):
            rows.append(f"| serving, {python['python']} | install failed | | no |")
            continue
        served = all(w["served"] and not w["heavy_imports"] for w in python["workers"])
        rows.append(f"| serving, {python['python']} | {python['site_packages_mib']:.1f} MiB | "
                    f"{len(python['distributions'])} | {'yes' if served else 'no'} |")
    if result.get("training_site_packages_mib") is not None:
        rows.append(f"| training, {result['pythons'][0]['python']} | {result['training_site_packages_mib']:.1f} MiB | "
                    f"{result['training_distributions']} | (not served) |")
    commit = result["provenance"]["commit"][:10]
    return "\n".join(rows) + (f"\n\nFrom `benchmarks/results/serving-install.json` (commit `{commit}`), written by "
                              "`python -m nirstream.devtools.serving_install_check --write`.")


def main(argv: list[str] | None = None) -> int:
    args = parse_or_render(__doc__, "benchmarks/results/serving-install.json", SECTION, SECTION_COMMAND,
                           render_section, argv)
    if args is not None:
        print("nothing to run: use --readme docs/install.md --render-only")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
