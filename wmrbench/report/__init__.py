"""Results -> the paper's tables (terminal, Markdown, CSV, LaTeX), leaderboards and plots.

Everything here reads typed results (:class:`wmrbench.results.records.Summary`) and never runs a model:
the package imports neither the attack engine nor the CLI.

* :mod:`.tables`: summaries -> DataFrames in the paper's layouts (the one row builder).
* :mod:`.render`: DataFrames -> terminal, Markdown, CSV, LaTeX.
* :mod:`.paper`: the paper's own numbers, and our tables beside them.
* :mod:`.leaderboard`: every summary.json under a folder -> table files.
* :mod:`.plots`: metrics against alpha_test, and the attacker's weights.
"""

from wmrbench.report.leaderboard import Found, Gathered, Leaderboard, gather, leaderboard
from wmrbench.report.paper import compare_with_paper, paper_tables
from wmrbench.report.plots import Plots, make_plots
from wmrbench.report.render import CiStyle, TableFormat, print_table, render
from wmrbench.report.tables import (
    TITLES, TableKind, build_table, defense_label, eps_text, protocol_text, result_table, seed_spread_table,
    terminal_view,
)

__all__ = [
    "TITLES", "CiStyle", "Found", "Gathered", "Leaderboard", "Plots", "TableFormat", "TableKind", "build_table",
    "compare_with_paper", "defense_label", "gather", "leaderboard", "make_plots", "paper_tables", "print_table",
    "render", "result_table", "eps_text", "protocol_text", "seed_spread_table", "terminal_view",
]
