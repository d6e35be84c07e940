"""The leaderboard on a terminal: about 120 columns, a legend under every table, and the
few-examples warning said once."""

from __future__ import annotations

import shutil
from pathlib import Path

from rich.console import Console

from tests.conftest import invoke
from wmrbench.report import print_table, terminal_view
from wmrbench.report.render import legend
from wmrbench.results.uncertainty import few_examples_line
from wmrbench.results.records import Uncertainty


def test_protocol_settings_that_differ_fold_into_one_column() -> None:
    import pandas as pd

    frame = pd.DataFrame({
        "Model": ["a", "b"], "A_rob": [90.0, 80.0], "A_rob_lo": [88.0, 77.0], "A_rob_hi": [92.0, 83.0],
        "Attack": ["PGD", "APGD-CE"], "Norm": ["Linf", "Linf"], "Step size": [0.01, None], "Examples": [100, 50],
    })
    shown, title = terminal_view(frame)
    assert list(shown.columns) == ["Model", "A_rob", "A_rob_lo", "A_rob_hi", "Protocol"]
    assert list(shown["Protocol"]) == ["PGD, step 0.01, n 100", "APGD-CE, n 50"]
    assert title == "every row: Norm Linf; Protocol: Attack, Step size, Examples"
    console = Console(record=True, width=200)
    print_table(shown, title, console)
    lines = console.export_text().rstrip("\n").splitlines()
    assert lines[-1].startswith("± half the 95% interval (bootstrap over test examples)")


def test_the_legend_says_only_what_the_table_shows() -> None:
    assert legend(["Model", "A_nat", "A_rob"], [["m", "90.00", "80.00"]]) == []
    lines = legend(["Model", "alpha_test", "A_sa", "A_tr"], [["m", "1", "70.00 ± 2.0", "60.00 ± 3.0"]])
    assert len(lines) == 2 and "A_wc" not in " ".join(lines)
    assert "exp(-alpha_test * margin)" in lines[0] and "A_tr under the weighted attack" in lines[1]


def test_few_examples_is_one_line_naming_the_results() -> None:
    def unc(n: float) -> Uncertainty:
        return Uncertainty("m", 0.95, 10, 0, {}, {"A_sa": {1.0: 300.0, 2.0: n}, "A_tr": {2.0: n + 1}})

    line = few_examples_line([("a", unc(40.2)), ("b", unc(500.0)), ("c", unc(12.0))])
    assert line is not None and "\n" not in line
    assert "a (about 40, A_sa at alpha 2)" in line and "c (about 12, A_sa at alpha 2)" in line and "b (" not in line
    assert few_examples_line([("b", unc(500.0))]) is None


def test_leaderboard_terminal_table_fits_about_120_columns(digits_results: Path, tmp_path: Path) -> None:
    results = Path(shutil.copytree(digits_results, tmp_path / "results"))
    out = invoke("leaderboard", results, "--table", "non-uniform")
    assert out.exit_code == 0, out.output
    table = [line.rstrip() for line in out.stdout.splitlines() if line.startswith(" trades-")]
    assert table and max(len(line) for line in table) <= 125, table
    assert sum("effective examples" in line for line in out.stdout.splitlines()) <= 1
