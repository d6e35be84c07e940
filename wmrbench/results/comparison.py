"""``wmrbench compare A B``: two results on the same test examples, compared paired.

The two results can be two models, two attacks, two seeds, or a baseline and its "+ours". Per
metric: the difference A - B in points, its 95% paired-bootstrap interval (the same resampled
examples for both results, :func:`wmrbench.results.uncertainty.paired`), a p-value, and for A_nat and
A_rob McNemar's exact test on the examples one gets right and the other wrong. Two results on
different examples are refused by name: an unpaired difference would carry both samples' noise
and the paired interval would be wrong.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import pandas as pd

from wmrbench.core.config import number_key
from wmrbench.core.errors import WmrbenchError, setting
from wmrbench.core.io import atomic_write_text
from wmrbench.results.records import RECORDS_NAME, SUMMARY_NAME, read_records, read_summary, tr_alphas
from wmrbench.results.uncertainty import BootstrapConfig, Difference, paired, paired_against, same_examples

DEFAULT_ALPHAS = (1.0, 1.5, 2.0)
SIGNIFICANCE = 0.05
STDOUT = "-"  # --output -: the table's text goes to standard output, no file is written
# Two single results say nothing of the training run's own randomness (wmrbench.results.groups).
ONE_RUN = "one training run each: this interval covers test examples only"


class CompareFormat(str, Enum):
    MD = "md"
    CSV = "csv"


@dataclass(frozen=True)
class Comparison:
    a: str  # the results' names (their folders)
    b: str
    n_examples: int
    differences: list[Difference]
    config: BootstrapConfig
    # what a reader must know beside the numbers: records no summary verifies, alphas left out
    notes: tuple[str, ...] = ()


def result_records(path: str | Path) -> tuple[str, pd.DataFrame]:
    """A result's name and records, from its folder (or its summary.json or records.csv).
    A summary beside the records must match them (its SHA-256), as everywhere else."""
    folder = _folder(path)
    records = folder / RECORDS_NAME
    if not records.is_file():
        raise WmrbenchError(f"{path}: no {RECORDS_NAME} (give a result folder that `wmrbench evaluate` wrote)")
    if (folder / SUMMARY_NAME).is_file():
        read_summary(folder / SUMMARY_NAME)  # refuses records that are not the summary's
    return folder.name or str(folder), read_records(records)  # records consistent with themselves


def _folder(path: str | Path) -> Path:
    path = Path(path)
    return path.parent if path.name in (SUMMARY_NAME, RECORDS_NAME) and path.is_file() else path


def unverified(name: str, path: str | Path) -> str | None:
    """A note when no summary.json beside a result's records holds their SHA-256: such records
    may have been truncated at a row boundary or edited consistently, and nothing can tell."""
    if (_folder(path) / SUMMARY_NAME).is_file():
        return None
    return (f"{name}: no {SUMMARY_NAME} beside its {RECORDS_NAME}, so nothing verifies them (their SHA-256); "
            "the numbers are only as good as that file")


def compare_records(name_a: str, records_a: pd.DataFrame, name_b: str, records_b: pd.DataFrame,
                    config: BootstrapConfig = BootstrapConfig(), alphas: list[float] | None = None) -> Comparison:
    """The paired comparison of two records on the same examples (else one line naming both)."""
    _check_same_examples(name_a, records_a, name_b, records_b)
    notes = _one_sided_alphas(name_a, records_a, name_b, records_b) if alphas is None else ()
    alphas = _common_alphas(records_a, records_b) if alphas is None else alphas
    return Comparison(name_a, name_b, len(records_a), paired(records_a, records_b, alphas, config), config, notes)


def _check_same_examples(name_a: str, records_a: pd.DataFrame, name_b: str, records_b: pd.DataFrame) -> None:
    differs = same_examples(records_a, records_b)
    if differs is not None:
        raise WmrbenchError(f"{name_a} and {name_b} hold different test examples ({differs}): "
                            f"a paired comparison needs the same examples in both; evaluate both with the same {setting('n_examples')}")


def _common_alphas(records_a: pd.DataFrame, records_b: pd.DataFrame) -> list[float]:
    common = [a for a in tr_alphas(records_a) if a in set(tr_alphas(records_b))]
    return common or list(DEFAULT_ALPHAS)  # A_sa needs only the unweighted attack's records


def _one_sided_alphas(name_a: str, records_a: pd.DataFrame, name_b: str, records_b: pd.DataFrame) -> tuple[str, ...]:
    """A_tr at an alpha one result lacks cannot be paired: say so, never drop it silently."""
    in_a, in_b = tr_alphas(records_a), tr_alphas(records_b)
    return tuple(f"A_tr at alpha_test {', '.join(number_key(a) for a in only)} only in {name}: not compared"
                 for name, only in ((name_a, [a for a in in_a if a not in set(in_b)]),
                                    (name_b, [a for a in in_b if a not in set(in_a)])) if only)


def compare_against(name_b: str, records_b: pd.DataFrame, others: list[tuple[str, pd.DataFrame]],
                    config: BootstrapConfig = BootstrapConfig()) -> list[Comparison | WmrbenchError]:
    """``compare_records(name, records, name_b, records_b, config)`` for every (name, records) of
    ``others``, with the same numbers, in one bootstrap pass (:func:`wmrbench.results.uncertainty.paired_against`):
    how a report compares every result with its leader. A pair on different examples gets its
    error in its place."""
    out: list[Comparison | WmrbenchError | None] = []
    for name_a, records_a in others:
        try:
            _check_same_examples(name_a, records_a, name_b, records_b)
            out.append(None)  # compared below, all together
        except WmrbenchError as exc:
            out.append(exc)
    batch = [i for i, o in enumerate(out) if o is None]
    chosen = [others[i][1] for i in batch]
    differences = paired_against(records_b, chosen, [_common_alphas(a, records_b) for a in chosen], config)
    for i, diffs in zip(batch, differences, strict=True):
        out[i] = Comparison(others[i][0], name_b, len(records_b), diffs, config,
                            _one_sided_alphas(others[i][0], others[i][1], name_b, records_b))
    return [o for o in out if o is not None]


def compare(path_a: str | Path, path_b: str | Path, config: BootstrapConfig = BootstrapConfig(),
            output: str | Path | None = None, fmt: CompareFormat | None = None) -> tuple[Comparison, Path | None]:
    """Compare two result folders; write the table to ``output`` (Markdown or CSV, by ``fmt`` or
    the file's suffix) atomically when given."""
    name_a, records_a = result_records(path_a)
    name_b, records_b = result_records(path_b)
    if name_a == name_b:
        name_a, name_b = str(path_a), str(path_b)
    comparison = compare_records(name_a, records_a, name_b, records_b, config)
    missing = tuple(note for note in (unverified(name_a, path_a), unverified(name_b, path_b)) if note)
    comparison = dataclasses.replace(comparison, notes=missing + comparison.notes)
    written = None
    if output is not None and str(output) != STDOUT:
        written = atomic_write_text(output, render(comparison, output_format(output, fmt)))
    return comparison, written


def output_format(output: str | Path, fmt: CompareFormat | None) -> CompareFormat:
    """``fmt`` if given, else CSV for a .csv name, else Markdown (also for ``-``)."""
    return fmt or (CompareFormat.CSV if str(output).lower().endswith(".csv") else CompareFormat.MD)


def render(c: Comparison, fmt: CompareFormat) -> str:
    """The file's text: CSV (full precision) or Markdown."""
    return to_csv(comparison_frame(c)) if fmt is CompareFormat.CSV else to_markdown(c)


# Points below which a difference is floating-point noise: A_sa and A_tr are weighted sums, and
# two results of 100.00 can differ by 1e-14 (which once read "B higher").
ZERO = 1e-9


def verdict(d: Difference, level: float = SIGNIFICANCE) -> str:
    """'A higher (significant at 5%; one training run each: ...)', 'B higher (not significant; ...)',
    'no difference (...)'. Significant: the paired interval excludes 0 (for A_nat / A_rob, McNemar agrees
    in the table). One result per side: the verdict says the interval covers test examples only."""
    if abs(d.difference) <= ZERO and abs(d.lo) <= ZERO and abs(d.hi) <= ZERO:
        return f"no difference ({ONE_RUN})"
    side = "A higher" if d.difference > ZERO else "B higher" if d.difference < -ZERO else "equal"
    significant = d.lo > ZERO or d.hi < -ZERO
    return f"{side} ({'significant' if significant else 'not significant'} at {level:.0%}; {ONE_RUN})"


def comparison_frame(c: Comparison) -> pd.DataFrame:
    """One row per metric, full precision (the CSV)."""
    rows = [{
        "Metric": d.metric, "alpha_test": d.alpha,
        "A": d.a, "B": d.b, "A - B": d.difference, "A - B_lo": d.lo, "A - B_hi": d.hi,
        "p (paired bootstrap)": d.p_value, "McNemar p": d.mcnemar_p, "only A right": d.only_a,
        "only B right": d.only_b, "verdict": verdict(d),
    } for d in c.differences]
    return pd.DataFrame(rows)


def to_csv(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False, lineterminator="\n")


def _p(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if value >= 1e-3 else f"{value:.1e}"


def display_rows(c: Comparison) -> tuple[list[str], list[list[str]]]:
    """The table as text, for the terminal and Markdown: accuracies with two decimals, the
    difference with its interval."""
    level = f"{c.config.level:.0%}"
    headers = ["Metric", "alpha_test", "A", "B", "A - B", f"{level} paired interval", "p (bootstrap)",
               "McNemar p (A right / B right only)", "verdict"]
    rows = []
    for d in c.differences:
        mcnemar = "-" if d.mcnemar_p is None else f"{_p(d.mcnemar_p)} ({d.only_a} / {d.only_b})"
        rows.append([d.metric, "-" if d.alpha is None else number_key(d.alpha), f"{d.a:.2f}", f"{d.b:.2f}", f"{d.difference:+.2f}",
                     f"[{d.lo:+.2f}, {d.hi:+.2f}]", _p(d.p_value), mcnemar, verdict(d)])
    return headers, rows


def title(c: Comparison) -> str:
    return (f"A = {c.a}, B = {c.b}: {c.n_examples} paired examples, {c.config.resamples} bootstrap resamples "
            f"(seed {c.config.seed})")


def to_markdown(c: Comparison) -> str:
    from tabulate import tabulate

    headers, rows = display_rows(c)
    align = ["left", "right", "right", "right", "right", "right", "right", "right", "left"]
    notes = "".join(f"Note: {note}\n" for note in c.notes)
    return f"{title(c)}\n\n{notes}{chr(10) if notes else ''}" + tabulate(rows, headers=headers, tablefmt="github", colalign=align,
                                        disable_numparse=True) + "\n"
