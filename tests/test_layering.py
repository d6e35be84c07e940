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


def test_the_cli_contracts_name_every_other_top_level_module() -> None:
    package = REPO / "wmrbench"
    modules = {f"wmrbench.{p.stem}" for p in package.glob("*.py") if p.stem not in ("__init__", "__main__")}
    modules |= {f"wmrbench.{p.name}" for p in package.iterdir() if (p / "__init__.py").is_file()}
    modules -= {"wmrbench.cli"}
    contracts = _contracts()
    for name in ("Only the CLI imports Typer", "Nothing imports the CLI"):
        assert set(contracts[name]["source_modules"]) == modules, name


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LINT_IMPORTS, "--no-cache"], cwd=root, capture_output=True, text=True, timeout=HANG_S,
                          env={"PYTHONPATH": str(root), "PATH": str(Path(sys.executable).parent)})


@pytest.mark.skipif(not Path(LINT_IMPORTS).exists(), reason="import-linter (dev dependency) is not installed")
def test_lint_imports_passes_and_fails_on_a_forbidden_import(tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    copy.mkdir()
    shutil.copy(REPO / "pyproject.toml", copy)
    shutil.copytree(REPO / "wmrbench", copy / "wmrbench", ignore=shutil.ignore_patterns("__pycache__"))
    clean = _lint(copy)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    # The attack engine must not know the evaluation pipeline.
    bad = copy / "wmrbench" / "attacks" / "noise.py"
    bad.write_text(bad.read_text() + "\nfrom wmrbench.evaluation import pipeline  # noqa: E402,F401\n")
    broken = _lint(copy)
    assert broken.returncode != 0
    assert "The attack engine knows nothing of training, evaluation, reports or the CLI BROKEN" in broken.stdout


@pytest.mark.skipif(not Path(LINT_IMPORTS).exists(), reason="import-linter (dev dependency) is not installed")
def test_the_cli_reaches_models_only_through_the_package(tmp_path: Path) -> None:
    """``from wmrbench.models import model_sources`` is the CLI's door; reaching past it into
    ``wmrbench.models.source`` breaks the contract (issue 22)."""
    copy = tmp_path / "repo"
    copy.mkdir()
    shutil.copy(REPO / "pyproject.toml", copy)
    shutil.copytree(REPO / "wmrbench", copy / "wmrbench", ignore=shutil.ignore_patterns("__pycache__"))
    bad = copy / "wmrbench" / "cli" / "models.py"
    bad.write_text(bad.read_text() + "\nfrom wmrbench.models.source import model_sources  # noqa: E402,F401\n")
    broken = _lint(copy)
    assert broken.returncode != 0
    assert "The CLI reaches models and audits through their packages' public names only BROKEN" in broken.stdout


@pytest.mark.skipif(not Path(LINT_IMPORTS).exists(), reason="import-linter (dev dependency) is not installed")
def test_an_import_inside_a_function_from_report_into_evaluation_breaks_their_independence(tmp_path: Path) -> None:
    """The HTML report reads result files and never runs the evaluation: an import made inside a
    function (run only when called) counts as one made at the top of the module."""
    copy = tmp_path / "repo"
    copy.mkdir()
    shutil.copy(REPO / "pyproject.toml", copy)
    shutil.copytree(REPO / "wmrbench", copy / "wmrbench", ignore=shutil.ignore_patterns("__pycache__"))
    bad = copy / "wmrbench" / "report" / "svg.py"
    bad.write_text(bad.read_text() + "\n\ndef _late() -> None:\n    from wmrbench.evaluation.partial import has_partial  # noqa: F401\n")
    broken = _lint(copy)
    assert broken.returncode != 0
    assert "Reports and the evaluation do not know each other BROKEN" in broken.stdout
    assert "wmrbench.report.svg -> wmrbench.evaluation.partial" in broken.stdout
