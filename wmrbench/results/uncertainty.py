"""Pure functions: per-example records -> 95% intervals, effective sample sizes and paired tests.

What the interval covers: the sampling of the test examples, for a fixed attack. The records are
taken as a sample from the population of test images; resampling them with replacement says how
much each metric would move on another sample of the same size. It does NOT cover the attack's own
randomness (its random starts): an attack run again with other starts gives other records, and
that spread is not in these intervals.

Method: a percentile bootstrap over examples (Efron and Tibshirani, "An Introduction to the
Bootstrap", ch. 13). Whole records are resampled, so the weights ``s_i = exp(-alpha * margin_i)``
of A_sa, A_tr and A_wc are renormalized in each resample: a weighted accuracy is a ratio
``sum_i s_i c_i / sum_i s_i`` whose denominator is itself random, and resampling whole records
carries that into the interval.

Speed: resample b drawing example i ``k_bi`` times is the same as giving it weight ``k_bi``, so
every metric of every resample is a ratio of two dot products with the count matrix ``K`` (B x N).
One index matrix is drawn per chunk of resamples, shared by every metric (and, for a paired
comparison, by both results), turned into counts, and multiplied with all numerators and
denominators at once (one matrix product). 10,000 examples, 7 alphas, 2,000 resamples take about
a second on one core (``benchmarks/bootstrap.py`` measures it).

Effective sample size (Kish): ``n_eff(alpha) = (sum s)^2 / sum s^2``: N at alpha 0, and the
number of equally weighted examples that would give the same variance as the weighted mean.

Across runs (:func:`two_level`): a claim about a training method rests on training runs as well
as on test examples, and an attack repeated with other seeds is a run of its own too. A group of
runs on the same examples gets a two-level (hierarchical) bootstrap: runs are resampled first,
then examples, with the same example counts for every run of a resample so that the pairing of
examples holds (Saravanan, Berman and Sober, "Application of the hierarchical bootstrap to
multi-level data in neuroscience", Neurons, Behavior, Data analysis, and Theory 3, 2020). The
count-matrix product above serves every run at once.

McNemar's exact test (McNemar 1947; the exact form is a two-sided binomial test on the
discordant pairs) is computed with exact integers (``math.comb``), so scipy is not needed.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd

from wmrbench.core.checks import check_int, check_seed
from wmrbench.core.config import metric_label, number_key
from wmrbench.core.errors import WmrbenchError
from wmrbench.results.metrics import worst_case_points
from wmrbench.results.records import RECORDS_NAME, Summary, Uncertainty, read_records, tr_alphas, tr_columns

METHOD = "percentile bootstrap over examples"
# Where every resample gives the same value (all examples right, all wrong, or one example) the
# percentile interval is [p, p], which reads as certainty: the Wilson score interval replaces it,
# on n examples (A_nat, A_rob) or n_eff (the weighted metrics), and the method names those metrics.
WILSON = "Wilson score interval"
LEVEL = 0.95
RESAMPLES = 2000
SEED = 0
FEW_EXAMPLES = 100  # below this n_eff a warning says so
_UNDERFLOW = 600.0  # exp(-600) is still a normal float64; exp(-746) is 0
_CHUNK_CELLS = 4_000_000  # resamples x examples per chunk: bounds the memory of the count matrix


@dataclass(frozen=True)
class BootstrapConfig:
    """How the intervals are computed (recorded in every summary)."""

    level: float = LEVEL
    resamples: int = RESAMPLES
    seed: int = SEED

    def __post_init__(self) -> None:
        if not 0 < self.level < 1:
            raise WmrbenchError(f"level is {self.level!r}, not in (0, 1)")
        object.__setattr__(self, "resamples", check_int(self.resamples, "resamples", 1))
        object.__setattr__(self, "seed", check_seed(self.seed))


# --- the metrics as ratios of sums: one (numerator, denominator) column pair per metric ---------


def _weights(margin: np.ndarray, alpha: float) -> np.ndarray:
    """``exp(-alpha * (margin - min margin))``: the same normalized weights as
    :func:`wmrbench.metrics.weighted_accuracy`, shifted so that none overflows."""
    margin = np.asarray(margin, dtype=np.float64)
    shift = margin.min() if alpha > 0 and margin.size else 0.0
    return np.exp(-alpha * (margin - shift))


def n_eff(margin: np.ndarray, alpha: float) -> float:
    """Kish's effective sample size of the weights at ``alpha``: ``(sum s)^2 / sum s^2``."""
    s = _weights(margin, alpha)
    return float(s.sum() ** 2 / (s * s).sum())


@dataclass(frozen=True)
class _Ratios:
    """Named metrics, each ``100 * (K @ num) / (K @ den)`` for a count vector K."""

    names: list[tuple[str, float | None]]  # (metric, alpha_test or None)
    num: np.ndarray  # (N, M)
    den: np.ndarray  # (N, M)
    # Metrics whose weights could all underflow in a resample that misses the lowest margins
    # (alpha * (max - min margin) > _UNDERFLOW): column -> (correct, margin, alpha), recomputed
    # per resample with that resample's own shift.
    steep: dict[int, tuple[np.ndarray, np.ndarray, float]] = dataclasses.field(default_factory=dict)

    def pick(self, columns: list[int]) -> _Ratios:
        steep = {new: self.steep[old] for new, old in enumerate(columns) if old in self.steep}
        return _Ratios([self.names[c] for c in columns], self.num[:, columns], self.den[:, columns], steep)


def _ratios(records: pd.DataFrame, alphas: list[float]) -> tuple[_Ratios, dict[tuple[str, float], float]]:
    names: list[tuple[str, float | None]] = []
    nums, dens = [], []
    neff: dict[tuple[str, float], float] = {}
    steep: dict[int, tuple[np.ndarray, np.ndarray, float]] = {}

    def add(metric: str, key: float | None, correct: np.ndarray, margin: np.ndarray | None, alpha: float) -> None:
        s = np.ones(len(correct)) if margin is None or alpha == 0 else _weights(margin, alpha)
        if margin is not None and margin.size and alpha * float(margin.max() - margin.min()) > _UNDERFLOW:
            steep[len(names)] = (np.asarray(correct, dtype=np.float64), margin, alpha)
        names.append((metric, key))
        nums.append(s * np.asarray(correct, dtype=np.float64))
        dens.append(s)
        if key is not None:
            neff[(metric, key)] = float(s.sum() ** 2 / (s * s).sum())

    pgd_correct = records["pgd_correct"].to_numpy(dtype=bool)
    pgd_margin = records["pgd_margin"].to_numpy(dtype=np.float64)
    add("A_nat", None, records["clean_correct"].to_numpy(dtype=bool), None, 0.0)
    add("A_rob", None, pgd_correct, None, 0.0)
    wc_correct, wc_margin = worst_case_points(records)
    for alpha in map(float, alphas):
        key = alpha
        add("A_sa", key, pgd_correct, pgd_margin, alpha)
        correct_col, margin_col = tr_columns(alpha)
        if correct_col in records:
            add("A_tr", key, records[correct_col].to_numpy(dtype=bool), records[margin_col].to_numpy(dtype=np.float64), alpha)
        add("A_wc", key, wc_correct, wc_margin, alpha)
    return _Ratios(names, np.stack(nums, axis=1), np.stack(dens, axis=1), steep), neff


def _chunks(ratio_sets: list[_Ratios], config: BootstrapConfig):  # -> Iterator[tuple[np.ndarray, list[np.ndarray]]]
    """Per chunk of resamples: the count matrix (b, N) and, per ratio set, the metric of every
    resample (b, M), all sets on the SAME resampled indices."""
    n = ratio_sets[0].num.shape[0]
    if n == 0:
        raise ValueError("no examples to resample")
    rng = np.random.default_rng(config.seed)
    chunk = max(1, min(config.resamples, _CHUNK_CELLS // n))
    # Numerators and denominators of every metric side by side: one matrix product per chunk.
    columns = np.concatenate([np.concatenate([r.num, r.den], axis=1) for r in ratio_sets], axis=1)
    for start in range(0, config.resamples, chunk):
        b = min(chunk, config.resamples - start)
        # The index matrix (resample, draw) -> example; int32 draws are 4x faster than int64.
        index = rng.integers(0, n, size=(b, n), dtype=np.int32)
        # Counts per (resample, example): offset each row's indices into one flat bincount
        # (b * n <= _CHUNK_CELLS fits in int32).
        counts = np.bincount((index + (np.arange(b, dtype=np.int32) * n)[:, None]).ravel(), minlength=b * n)
        counts = counts.reshape(b, n).astype(np.float64)
        sums = counts @ columns
        at = 0
        for r in ratio_sets:
            for column, (correct, margin, alpha) in r.steep.items():
                # This resample's own lowest margin as the shift: its weights never all underflow.
                drawn = np.where(counts > 0, margin[None, :], np.inf)
                w = counts * np.exp(-alpha * (drawn - drawn.min(axis=1, keepdims=True)))  # undrawn: exp(-inf) = 0
                m = r.num.shape[1]
                sums[:, at + column], sums[:, at + m + column] = w @ correct, w.sum(axis=1)
            at += 2 * r.num.shape[1]
        values, at = [], 0
        for r in ratio_sets:
            m = r.num.shape[1]
            values.append(100.0 * sums[:, at:at + m] / sums[:, at + m:at + 2 * m])
            at += 2 * m
        yield counts, values


def _resampled(ratio_sets: list[_Ratios], config: BootstrapConfig) -> list[np.ndarray]:
    """Per ratio set, the metric of every resample (B, M), all sets on the SAME resampled indices."""
    chunks = [values for _, values in _chunks(ratio_sets, config)]
    return [np.concatenate([c[i] for c in chunks], axis=0) for i in range(len(ratio_sets))]


def _percentiles(values: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    tail = 100.0 * (1.0 - level) / 2.0
    lo, hi = np.percentile(values, [tail, 100.0 - tail], axis=0)
    return lo, hi


def _nest(names: list[tuple[str, float | None]], values: list[object]) -> dict[str, object]:
    out: dict[str, object] = {}
    for (metric, key), value in zip(names, values, strict=True):
        if key is None:
            out[metric] = value
        else:
            out.setdefault(metric, {})[key] = value  # type: ignore[union-attr]
    return out


def uncertainty(records: pd.DataFrame, alphas: list[float] | None = None,
                config: BootstrapConfig = BootstrapConfig()) -> Uncertainty:
    """Intervals for A_nat, A_rob and A_sa, A_tr, A_wc at every alpha, and their n_eff."""
    alphas = tr_alphas(records) if alphas is None else list(alphas)
    ratios, neff = _ratios(records, alphas)
    (values,) = _resampled([ratios], config)
    lo, hi = _percentiles(values, config.level)
    collapsed = []
    for j, (metric, key) in enumerate(ratios.names):
        if hi[j] - lo[j] <= 1e-9:  # every resample alike: 0%, 100%, or one example
            n = len(records) if key is None else neff[(metric, key)]
            lo[j], hi[j] = wilson(float(lo[j]) / 100.0, n, config.level)
            collapsed.append(metric_label(metric, key))
    intervals = _nest(ratios.names, [(round(float(a), 6), round(float(b), 6)) for a, b in zip(lo, hi, strict=True)])
    n_effs: dict[str, dict[float, float]] = {}
    for (metric, key), value in neff.items():
        n_effs.setdefault(metric, {})[key] = round(value, 3)
    method = METHOD + (f"; {WILSON} where every resample was alike: {', '.join(collapsed)}" if collapsed else "")
    return Uncertainty(method, config.level, config.resamples, config.seed, intervals, n_effs)  # type: ignore[arg-type]


def wilson(p: float, n: float, level: float = LEVEL) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``p`` (0..1) on ``n`` examples, in percent
    (Wilson 1927; Brown, Cai and DasGupta 2001 recommend it for small n). Unlike the bootstrap's
    it never collapses to [p, p]: on one image answered right it is [20.65, 100] at 95%."""
    if n <= 0:
        return 0.0, 100.0
    z = statistics.NormalDist().inv_cdf(0.5 + level / 2.0)
    z2n = z * z / n
    centre = (p + z2n / 2.0) / (1.0 + z2n)
    half = z * math.sqrt(max(p * (1.0 - p), 0.0) / n + z2n / (4.0 * n)) / (1.0 + z2n)
    return 100.0 * max(0.0, centre - half), 100.0 * min(1.0, centre + half)


def alike_warnings(unc: Uncertainty) -> list[str]:
    """One line naming the metrics whose interval is Wilson's (every resample alike: all examples
    right, all wrong, or one example; the bootstrap's would read [p, p])."""
    if WILSON not in unc.method:
        return []
    metrics = dict.fromkeys(name.split("@")[0] for name in unc.method.split(": ", 1)[-1].split(", "))
    # short: the leaderboard prints it after the result's name, within 120 columns
    return [f"Wilson interval for {', '.join(metrics)}: every example alike"]


def few_examples_warnings(unc: Uncertainty, threshold: float = FEW_EXAMPLES) -> list[str]:
    """'A_sa at alpha 2 rests on about 64 examples; use more test examples': one line per
    metric whose n_eff (rounded) is under ``threshold`` at some alpha, naming its smallest."""
    lines = alike_warnings(unc)
    for metric, per_alpha in unc.n_eff.items():
        if not per_alpha:
            continue
        key, value = min(per_alpha.items(), key=lambda item: item[1])
        if round(value) < threshold:
            lines.append(f"{metric} at alpha {number_key(key)} rests on about {value:.0f} examples; use more test examples")
    return lines


def few_examples_line(named: list[tuple[str, Uncertainty]], threshold: float = FEW_EXAMPLES) -> str | None:
    """One line for many results (a leaderboard): the results whose weighted numbers rest on
    fewer than ``threshold`` effective examples, each with its smallest n_eff and where; None
    when there are none."""
    parts = []
    for name, unc in named:
        smallest = [(value, metric, key) for metric, per_alpha in unc.n_eff.items() for key, value in per_alpha.items()]
        if smallest:
            value, metric, key = min(smallest)
            if round(value) < threshold:
                parts.append(f"{name} (about {value:.0f}, {metric} at alpha {number_key(key)})")
    if not parts:
        return None
    return (f"weighted numbers resting on fewer than {threshold:.0f} effective examples (n_eff): "
            f"{', '.join(parts)}; use more test examples")


# --- two levels: runs (training or attack seeds), then examples ---------------------------------


@dataclass(frozen=True)
class TwoLevel:
    """The two-level bootstrap of one or more groups of runs on the same examples.

    ``points[g]`` (R_g, M): each run's own value of every metric; ``means[g]`` (B, M): the group's
    mean over its resampled runs in each resample; ``within[g]`` (R_g, M): each run's variance over
    the example resamples alone (the sampling of test examples, for that run)."""

    names: list[tuple[str, float | None]]
    points: list[np.ndarray]
    means: list[np.ndarray]
    within: list[np.ndarray]


def common_names(records: list[pd.DataFrame], alphas: list[float]) -> list[tuple[str, float | None]]:
    """The metrics every one of ``records`` holds (A_tr only where every run has its attack)."""
    sets = [_ratios(r, alphas)[0].names for r in records]
    return [n for n in sets[0] if all(n in other for other in sets[1:])]


def two_level(groups: list[list[pd.DataFrame]], alphas: list[float], config: BootstrapConfig = BootstrapConfig(),
              paired: bool = False) -> TwoLevel:
    """Hierarchical bootstrap (Saravanan, Berman and Sober, "Application of the hierarchical
    bootstrap to multi-level data in neuroscience", 2020): each resample draws every group's runs
    with replacement, then the test examples with replacement, with the SAME example counts for
    every run of every group (the runs were scored on the same examples, and that pairing is kept).
    A group's value in a resample is the mean over its drawn runs of each run's metric on the drawn
    examples. ``paired``: the groups' runs pair up (run i of every group shares its seed), and one
    draw of run indices serves every group. The example draws are :func:`uncertainty`'s, so one run
    per group gives the example-only intervals exactly; the run draws come from their own stream.

    Speed: the example counts of a chunk are one matrix (:func:`_chunks`), multiplied with the
    numerators and denominators of every run at once, as for a single result.
    """
    if not groups or any(not g for g in groups):
        raise ValueError("every group needs at least one run")
    if paired and len({len(g) for g in groups}) != 1:
        raise ValueError("paired groups need the same number of runs")
    flat = [r for g in groups for r in g]
    names = common_names(flat, alphas)
    sets = []
    for records in flat:
        ratios, _ = _ratios(records, alphas)
        sets.append(ratios.pick([ratios.names.index(n) for n in names]))
    points = np.stack([100.0 * r.num.sum(axis=0) / r.den.sum(axis=0) for r in sets])  # (R, M)
    run_rng = np.random.default_rng([config.seed, 1])  # the run draws: a stream of their own
    sizes = [len(g) for g in groups]
    starts = np.cumsum([0, *sizes])
    per_run, means = [], [[] for _ in groups]
    for _, values in _chunks(sets, config):
        stacked = np.stack(values, axis=1)  # (b, R, M)
        per_run.append(stacked)
        b = stacked.shape[0]
        shared = None
        for g, size in enumerate(sizes):
            if paired and shared is not None:
                counts = shared
            else:
                index = run_rng.integers(0, size, size=(b, size))
                counts = np.stack([np.bincount(row, minlength=size) for row in index]).astype(np.float64)
                shared = counts
            block = stacked[:, starts[g]:starts[g + 1], :]
            means[g].append(np.einsum("br,brm->bm", counts, block) / size)
    runs = np.concatenate(per_run, axis=0)  # (B, R, M)
    within = runs.var(axis=0)  # (R, M)
    return TwoLevel(names, [points[starts[g]:starts[g + 1]] for g in range(len(groups))],
                    [np.concatenate(m, axis=0) for m in means],
                    [within[starts[g]:starts[g + 1]] for g in range(len(groups))])


def run_variance_share(points: np.ndarray, within: np.ndarray) -> np.ndarray:
    """Per metric, the share of one run's variance that is due to the run (its training or attack
    seed) rather than to the sampling of test examples: ``between / (between + within)``, with
    ``within`` the mean over runs of each run's example-bootstrap variance and ``between`` the
    runs' observed variance (ddof 1). The runs were scored on the SAME examples, so their spread
    holds no example-sampling noise: nothing is subtracted from it. NaN with one run."""
    if points.shape[0] < 2:
        return np.full(points.shape[1], np.nan)
    within_mean = within.mean(axis=0)
    between = points.var(axis=0, ddof=1)
    total = between + within_mean
    return np.divide(between, total, out=np.zeros_like(total), where=total > 0)


def percentile_interval(values: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """The percentile interval of every column of ``values`` (resamples x metrics)."""
    return _percentiles(values, level)


def bootstrap_p(d: np.ndarray) -> np.ndarray:
    """Two-sided bootstrap p-value of 'no difference' per column of ``d`` (resamples x metrics)."""
    return _bootstrap_p(d)


# --- paired comparison of two results on the same examples --------------------------------------


def mcnemar_exact(a_correct: np.ndarray, b_correct: np.ndarray) -> tuple[int, int, float]:
    """(A right and B wrong, A wrong and B right, two-sided exact p-value).

    Under the null hypothesis each discordant pair goes either way with probability 1/2, so the
    smaller count is Binomial(b + c, 1/2); the p-value is twice its lower tail, at most 1.
    Exact integers: ``sum_k<=m C(n, k) / 2^n`` with no overflow and no rounding until the end.
    """
    a = np.asarray(a_correct, dtype=bool)
    b = np.asarray(b_correct, dtype=bool)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    n, m = only_a + only_b, min(only_a, only_b)
    if n == 0:
        return only_a, only_b, 1.0
    tail = Fraction(sum(math.comb(n, k) for k in range(m + 1)), 2**n)
    return only_a, only_b, float(min(Fraction(1), 2 * tail))


@dataclass(frozen=True)
class Difference:
    """One metric of A minus the same metric of B on the same examples."""

    metric: str  # A_nat, A_rob, A_sa, A_tr, A_wc
    alpha: float | None  # alpha_test of the weighted metrics
    a: float
    b: float
    difference: float  # a - b, in points
    lo: float
    hi: float
    p_value: float  # paired bootstrap, two-sided
    mcnemar_p: float | None = None  # A_nat and A_rob only
    only_a: int | None = None  # examples A gets right and B wrong (A_nat and A_rob)
    only_b: int | None = None

    @property
    def label(self) -> str:
        return metric_label(self.metric, self.alpha, paren=True)


def _bootstrap_p(d: np.ndarray) -> np.ndarray:
    """Two-sided p-value of 'no difference' from the paired bootstrap distribution of A - B:
    twice the smaller share of resamples on either side of 0 (the smallest level at which the
    percentile interval excludes 0), with the +1 correction so it is never exactly 0."""
    b = d.shape[0]
    below = ((d <= 0).sum(axis=0) + 1) / (b + 1)
    above = ((d >= 0).sum(axis=0) + 1) / (b + 1)
    return np.minimum(1.0, 2.0 * np.minimum(below, above))


def paired(records_a: pd.DataFrame, records_b: pd.DataFrame, alphas: list[float] | None = None,
           config: BootstrapConfig = BootstrapConfig()) -> list[Difference]:
    """Per metric, A - B with a paired bootstrap interval and p-value (the same resampled
    examples for both), and McNemar's exact test for A_nat and A_rob.

    The records must hold the same examples in the same order (:func:`same_examples` checks);
    ``alphas`` defaults to those both records hold weighted-attack columns for, else A_sa's.
    """
    if alphas is None:
        common = [a for a in tr_alphas(records_a) if a in set(tr_alphas(records_b))]
        alphas = common
    ra, _ = _ratios(records_a, alphas)
    rb, _ = _ratios(records_b, alphas)
    names = [n for n in ra.names if n in set(rb.names)]  # A_tr only where both have it
    ra = ra.pick([ra.names.index(n) for n in names])
    rb = rb.pick([rb.names.index(n) for n in names])
    va, vb = _resampled([ra, rb], config)
    return _differences(ra, rb, names, va - vb, records_a, records_b, config)


def same_examples(records_a: pd.DataFrame, records_b: pd.DataFrame) -> str | None:
    """None when both records hold the same examples (index and label, in order), else what differs."""
    ia, ib = records_a["index"].to_numpy(), records_b["index"].to_numpy()
    if len(ia) != len(ib):
        return f"{len(ia)} examples against {len(ib)}"
    if not np.array_equal(ia, ib):
        first = int(np.flatnonzero(ia != ib)[0])
        return f"row {first} holds example {int(ia[first])} against {int(ib[first])}"
    la, lb = records_a["label"].to_numpy(), records_b["label"].to_numpy()
    if not np.array_equal(la, lb):
        first = int(np.flatnonzero(la != lb)[0])
        return f"example {int(ia[first])} has label {int(la[first])} against {int(lb[first])}"
    return None


def with_uncertainty(summary: Summary, folder: str | Path | None) -> Summary:
    """``summary`` with its intervals: as recorded (schema 2), else computed from the records.csv
    in ``folder`` (a v1 summary), with the default configuration; unchanged when neither exists."""
    if summary.uncertainty is not None or folder is None:
        return summary
    path = Path(folder) / RECORDS_NAME
    if not path.is_file():
        return summary
    records = read_records(path)
    alphas = summary.metrics.alphas
    return dataclasses.replace(summary, uncertainty=uncertainty(records, alphas))


# --- many paired comparisons against one reference, in one pass -----------------------------------


def paired_against(reference: pd.DataFrame, others: list[pd.DataFrame], alphas: list[list[float]],
                   config: BootstrapConfig = BootstrapConfig()) -> list[list[Difference]]:
    """``[paired(o, reference, a, config) for o, a in zip(others, alphas)]``, the same numbers to
    the last bit, computed in one pass.

    Every paired bootstrap with the same seed and number of examples draws the same resampled
    rows, so the count matrix of each chunk (the draws and their bincount: most of the time of
    one comparison) is made once and used by every comparison, and the reference's ratios are
    built once per alpha list. Each comparison's sums are still its own matrix product on the
    same columns as in :func:`paired`, which is what keeps the numbers identical. A report that
    compares 200 results with their leader needs this; ``alphas`` is one list per other result.
    """
    if len(alphas) != len(others):
        raise ValueError(f"{len(alphas)} alpha lists for {len(others)} results")
    n = len(reference)
    if any(len(o) != n for o in others):
        raise ValueError("every result must hold the reference's examples")
    reference_ratios: dict[tuple[float, ...], _Ratios] = {}
    pairs: list[tuple[_Ratios, _Ratios, list[tuple[str, float | None]]]] = []
    for other, alpha_list in zip(others, alphas, strict=True):
        key = tuple(alpha_list)
        if key not in reference_ratios:
            reference_ratios[key] = _ratios(reference, list(key))[0]
        ra, rb = _ratios(other, list(key))[0], reference_ratios[key]
        names = [name for name in ra.names if name in set(rb.names)]  # as in paired()
        pairs.append((ra.pick([ra.names.index(m) for m in names]), rb.pick([rb.names.index(m) for m in names]), names))
    if not pairs:
        return []
    values = _resampled_pairs([(ra, rb) for ra, rb, _ in pairs], config)
    out = []
    for (ra, rb, names), (va, vb), other in zip(pairs, values, others, strict=True):
        out.append(_differences(ra, rb, names, va - vb, other, reference, config))
    return out


def _resampled_pairs(pairs: list[tuple[_Ratios, _Ratios]], config: BootstrapConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`_resampled` of every ``[a, b]`` pair, on one shared count matrix per chunk (all
    pairs hold the same number of examples). Mirrors :func:`_resampled` step by step: the
    equality test in tests/results/test_uncertainty.py holds the two together."""
    n = pairs[0][0].num.shape[0]
    if n == 0:
        raise ValueError("no examples to resample")
    rng = np.random.default_rng(config.seed)
    chunk = max(1, min(config.resamples, _CHUNK_CELLS // n))
    columns = [np.concatenate([np.concatenate([r.num, r.den], axis=1) for r in pair], axis=1) for pair in pairs]
    out: list[list[np.ndarray]] = [[] for _ in pairs]
    for start in range(0, config.resamples, chunk):
        b = min(chunk, config.resamples - start)
        index = rng.integers(0, n, size=(b, n), dtype=np.int32)
        counts = np.bincount((index + (np.arange(b, dtype=np.int32) * n)[:, None]).ravel(), minlength=b * n)
        counts = counts.reshape(b, n).astype(np.float64)
        for pair, pair_columns, sums_out in zip(pairs, columns, out, strict=True):
            sums = counts @ pair_columns
            at = 0
            for r in pair:
                for column, (correct, margin, alpha) in r.steep.items():
                    drawn = np.where(counts > 0, margin[None, :], np.inf)
                    w = counts * np.exp(-alpha * (drawn - drawn.min(axis=1, keepdims=True)))
                    m = r.num.shape[1]
                    sums[:, at + column], sums[:, at + m + column] = w @ correct, w.sum(axis=1)
                at += 2 * r.num.shape[1]
            sums_out.append(sums)
    results = []
    for pair, chunks in zip(pairs, out, strict=True):
        sums = np.concatenate(chunks, axis=0)
        per_set, at = [], 0
        for r in pair:
            m = r.num.shape[1]
            per_set.append(100.0 * sums[:, at:at + m] / sums[:, at + m:at + 2 * m])
            at += 2 * m
        results.append((per_set[0], per_set[1]))
    return results


def _differences(ra: _Ratios, rb: _Ratios, names: list[tuple[str, float | None]], d: np.ndarray,
                 records_a: pd.DataFrame, records_b: pd.DataFrame, config: BootstrapConfig) -> list[Difference]:
    """The tail of :func:`paired`: point values, interval, p-value and McNemar per metric."""
    lo, hi = _percentiles(d, config.level)
    p = _bootstrap_p(d)
    point_a = 100.0 * ra.num.sum(axis=0) / ra.den.sum(axis=0)
    point_b = 100.0 * rb.num.sum(axis=0) / rb.den.sum(axis=0)
    out = []
    for i, (metric, key) in enumerate(names):
        extra: dict[str, object] = {}
        if metric in ("A_nat", "A_rob"):
            column = "clean_correct" if metric == "A_nat" else "pgd_correct"
            only_a, only_b, mp = mcnemar_exact(records_a[column].to_numpy(dtype=bool), records_b[column].to_numpy(dtype=bool))
            extra = {"mcnemar_p": mp, "only_a": only_a, "only_b": only_b}
        out.append(Difference(metric, key, float(point_a[i]), float(point_b[i]), float(point_a[i] - point_b[i]),
                              float(lo[i]), float(hi[i]), float(p[i]), **extra))  # type: ignore[arg-type]
    return out
