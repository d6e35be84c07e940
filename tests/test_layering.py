"""The layering contracts (pyproject.toml, checked by import-linter) cover every module, and a
deliberately wrong import really breaks them."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import HANG_S, REPO

LINT_IMPORTS = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))


def _contracts() -> dict[str, dict]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    return {c["name"]: c for c in config["tool"]["importlinter"]["contracts"]}


FLOORS = "The package's floors, each above the ones it uses"


def _floor_names(contract: dict) -> list[set[str]]:
    return [{name.strip() for name in layer.replace(":", "|").split("|")} for layer in contract["layers"]]


def test_the_package_root_holds_floors_only_and_the_floors_contract_names_each() -> None:
    package = REPO / "wmrbench"
    loose = sorted(p.name for p in package.glob("*.py") if p.stem not in ("__init__", "__main__"))
    assert not loose, f"modules at the package root, outside every floor: {loose}"
    packages = {p.name for p in package.iterdir() if (p / "__init__.py").is_file()}
    floors = _floor_names(_contracts()[FLOORS])
    assert set().union(*floors) == packages
    assert floors[0] == {"cli"} and floors[-1] == {"core"}
    typer_free = set(_contracts()["Only the CLI imports Typer"]["source_modules"])
    assert typer_free == {f"wmrbench.{name}" for name in packages - {"cli"}}


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LINT_IMPORTS, "--no-cache"], cwd=root, capture_output=True, text=True, timeout=HANG_S,
                          env={"PYTHONPATH": str(root), "PATH": str(Path(sys.executable).parent)})

def _lint_with(tmp_path: Path, module: str, added: str) -> subprocess.CompletedProcess[str]:
    """lint-imports on a copy of the package with ``added`` appended to ``module`` (a path under
    wmrbench/); ``added`` "" lints the copy as it is."""
    copy = tmp_path / "repo"
    if not copy.exists():
        copy.mkdir()
        shutil.copy(REPO / "pyproject.toml", copy)
        shutil.copytree(REPO / "wmrbench", copy / "wmrbench", ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / "wmrbench" / module
    target.write_text(target.read_text() + added)
    return _lint(copy)



@pytest.mark.skipif(not Path(LINT_IMPORTS).exists(), reason="import-linter (dev dependency) is not installed")
def test_lint_imports_passes_and_fails_on_a_forbidden_import(tmp_path: Path) -> None:
    clean = _lint_with(tmp_path, "attacks/noise.py", "")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    # The attack engine must not know the evaluation pipeline.
    broken = _lint_with(tmp_path, "attacks/noise.py", "\nfrom wmrbench.evaluation import pipeline  # noqa: E402,F401\n")
    assert broken.returncode != 0
    assert f"{FLOORS} BROKEN" in broken.stdout
    assert "wmrbench.attacks.noise -> wmrbench.evaluation" in broken.stdout


@pytest.mark.skipif(not Path(LINT_IMPORTS).exists(), reason="import-linter (dev dependency) is not installed")
def test_the_cli_reaches_models_only_through_the_package(tmp_path: Path) -> None:
    """``from wmrbench.models import model_sources`` is the CLI's door; reaching past it into
    ``wmrbench.models.source`` breaks the contract."""
    broken = _lint_with(tmp_path, "cli/models.py", "\nfrom wmrbench.models.source import model_sources  # noqa: E402,F401\n")
    assert broken.returncode != 0
    assert "The CLI reaches models and audits through their packages' public names only BROKEN" in broken.stdout


@pytest.mark.skipif(not Path(LINT_IMPORTS).exists(), reason="import-linter (dev dependency) is not installed")
def test_an_import_inside_a_function_from_report_into_evaluation_breaks_their_independence(tmp_path: Path) -> None:
    """The HTML report reads result files and never runs the evaluation: an import made inside a
    function (run only when called) counts as one made at the top of the module."""
    broken = _lint_with(tmp_path, "report/svg.py",
                        "\n\ndef _late() -> None:\n    from wmrbench.evaluation.partial import has_partial  # noqa: F401\n")
    assert broken.returncode != 0
    assert "Reports and the evaluation do not know each other BROKEN" in broken.stdout
    assert "wmrbench.report.svg -> wmrbench.evaluation.partial" in broken.stdout


@pytest.mark.skipif(not Path(LINT_IMPORTS).exists(), reason="import-linter (dev dependency) is not installed")
def test_an_import_inside_a_function_from_the_foundation_upwards_breaks_the_floors(tmp_path: Path) -> None:
    """The foundation imports nothing above it, not even lazily inside a function."""
    broken = _lint_with(tmp_path, "core/io.py", "\n\ndef _late() -> None:\n    from wmrbench.results import records  # noqa: F401\n")
    assert broken.returncode != 0
    assert f"{FLOORS} BROKEN" in broken.stdout
    assert "wmrbench.core.io -> wmrbench.results.records" in broken.stdout
