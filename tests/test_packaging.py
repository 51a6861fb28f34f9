"""The install is one package: nothing named ``stream`` or ``trainer`` lands in site-packages."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    package_dir = config["package-dir"]
    found = set()
    for name, folder in package_dir.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((name, *relative)))
    assert found == listed


def test_a_built_install_holds_only_the_nirstream_package(tmp_path):
    target = tmp_path / "site"
    build_existed = (ROOT / "build").exists()
    try:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                        "--target", str(target), str(ROOT)], check=True, capture_output=True, cwd=tmp_path)
    finally:
        if not build_existed:  # setuptools builds in the source tree: leave the checkout as it was
            shutil.rmtree(ROOT / "build", ignore_errors=True)
    top_level = {p.name for p in target.iterdir() if p.name not in {"bin", "__pycache__"}}
    assert {name for name in top_level if not name.endswith(".dist-info")} == {"nirstream"}
    for room in ("stream", "trainer", "devtools", "core/chemometrics", "kafka"):
        assert (target / "nirstream" / room / "__init__.py").is_file(), room
    assert (target / "nirstream/core/datasets/data/tecator/tecator.csv").is_file()
