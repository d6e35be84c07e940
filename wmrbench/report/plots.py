"""``plot``: metrics against alpha_test, and where a non-uniform attacker puts its mass.

* ``metrics-<dataset>.{png,svg}``: A_rob, A_sa and A_tr against alpha_test, one line per model,
  each with its 95% bootstrap interval as a band (wmrbench.results.uncertainty).
* ``weights-<model>.{png,svg}``: for one result's records.csv, the normalized weights
  ``s_i = exp(-alpha * pgd_margin_i) / sum_j exp(-alpha * pgd_margin_j)`` of the unweighted-PGD
  points (those A_sa counts): left, the attacker's mass over the PGD margin (the paper's
  Figure 2 idea: the mass moves to small and negative margins as alpha grows); right, how the
  weights spread, as multiples of the uniform weight 1/N.

Figures are made with matplotlib's object API (no pyplot state; Agg renders PNG) and written
atomically. SVGs carry no date and a fixed id salt, so a rerun writes the same bytes.
"""

from __future__ import annotations

import hashlib

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wmrbench.core.errors import WmrbenchError, first_line
from wmrbench.core.io import atomic_write
from wmrbench.results.metrics import normalized_weights
from wmrbench.results.records import read_records
from wmrbench.report.leaderboard import Found, gather, nothing_found, remove_stale_tmp_beside

FORMATS = ("png", "svg")
# Each title reads as a phrase with a named attack ("PGD", "weighted PGD") and with the names
# used when the results ran different attacks ("the uniform attack", "the weighted attack").
PANELS = (("A_rob", "A_rob: accuracy under {attack}"), ("A_sa", "A_sa: {attack}'s points, weighted"),
          ("A_tr", "A_tr: accuracy under {weighted}"))


def attack_names(summaries: Sequence[Any]) -> tuple[str, str]:
    """The uniform attack and the weighted one the results ran (PGD, APGD-CE, APGD-DLR, AutoAttack,
    whose weighted form is APGD-CE), so that a title never says PGD for an APGD result; results that
    ran different attacks are "the uniform attack" and "the weighted attack"."""
    from wmrbench.core.attack_config import AttackMethod

    methods = {s.config.method for s in summaries}
    if len(methods) != 1:
        return "the uniform attack", "the weighted attack"
    method = methods.pop()
    if method is AttackMethod.AUTOATTACK:
        return "AutoAttack", "weighted APGD-CE"
    return method.value.upper(), f"weighted {method.value.upper()}"


@dataclass(frozen=True)
class Plots:
    files: list[Path]
    warnings: list[str]


def _save(fig: Any, stem: Path) -> list[Path]:
    import matplotlib

    written = []
    with matplotlib.rc_context({"svg.hashsalt": "wmrbench"}):
        for fmt in FORMATS:
            path = stem.with_name(f"{stem.name}.{fmt}")
            remove_stale_tmp_beside(path)  # a killed earlier write's, never a live writer's
            metadata = {"Date": None} if fmt == "svg" else {"Software": None}
            written.append(atomic_write(path, lambda h, fmt=fmt, metadata=metadata: fig.savefig(
                h, format=fmt, dpi=120, bbox_inches="tight", metadata=metadata)))
    return written


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _safe_name(name: str) -> str:
    """A file name for ``name`` that no other name shares: characters a file name should not hold
    become ``_``, and then a short hash of the whole name is appended (``x&1`` and ``x%1`` would
    otherwise both be ``x_1``, and one result's plot would overwrite the other's)."""
    safe = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_.") else "_" for ch in name)
    if safe == name and not name.startswith("."):
        return name
    return f"{safe.lstrip('.') or '_'}-{hashlib.sha256(name.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"


def plot_metrics(results: Sequence[Found], dataset: str, out_dir: Path) -> list[Path]:
    """Three panels (A_rob, A_sa, A_tr against alpha_test), one line per result."""
    fig = _figure(12, 3.8)
    axes = fig.subplots(1, 3, sharey=True)
    for result in results:
        metrics = result.summary.metrics
        alphas = sorted(metrics.alphas)
        series = {
            "A_rob": [metrics.A_rob] * len(alphas),  # does not depend on alpha: a flat line
            "A_sa": [metrics.A_sa[a] for a in alphas],
            "A_tr": [metrics.A_tr.get(a, np.nan) for a in alphas],
        }
        bands = _bands(result, alphas)
        for ax, (key, _) in zip(axes, PANELS):
            (line,) = ax.plot(alphas, series[key], marker="o", label=result.name)
            lo, hi = bands[key]
            if np.isfinite(lo).any():  # the 95% interval as a band in the line's colour
                ax.fill_between(alphas, lo, hi, color=line.get_color(), alpha=0.18, linewidth=0)
    attack, weighted = attack_names([r.summary for r in results])
    for ax, (_, title) in zip(axes, PANELS):
        ax.set_title(title.format(attack=attack, weighted=weighted))
        ax.set_xlabel(r"$\alpha_{test}$")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy (%)")
    axes[-1].legend(fontsize="small", loc="best")
    fig.suptitle(f"{dataset}: robustness under uniform and non-uniform attacks")
    return _save(fig, out_dir / f"metrics-{_safe_name(dataset)}")


def _bands(result: Found, alphas: list[float]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per panel, the 95% interval's low and high ends at each alpha (NaN where there is none:
    a result without intervals and without records draws no band)."""
    unc = result.summary.uncertainty
    out = {}
    for key, _ in PANELS:
        pairs = [None if unc is None else unc.interval(key, None if key == "A_rob" else a) for a in alphas]
        out[key] = (np.array([np.nan if p is None else p[0] for p in pairs], dtype=np.float64),
                    np.array([np.nan if p is None else p[1] for p in pairs], dtype=np.float64))
    return out



def plot_weights(records_path: Path, name: str, alphas: list[float], out_dir: Path, attack: str = "PGD") -> list[Path]:
    """Where the attacker puts its mass: normalized weights of the uniform attack's points (PGD's,
    or ``attack``'s) at each alpha."""
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    try:
        margin = read_records(records_path)["pgd_margin"].to_numpy(dtype=np.float64)
    except (ValueError, TypeError):
        raise WmrbenchError(f"{records_path}: pgd_margin holds values that are not numbers") from None
    n = len(margin)
    if n == 0:
        raise WmrbenchError(f"{records_path} has no examples")
    if not np.isfinite(margin).all():
        raise WmrbenchError(f"{records_path}: pgd_margin holds values that are not finite")
    alphas = [0.0] + [a for a in sorted(set(alphas)) if a > 0]
    weights = {alpha: normalized_weights(margin, alpha) for alpha in alphas}
    fig = _figure(11, 4)
    left, right = fig.subplots(1, 2)
    margin_bins = np.linspace(-1.0, 1.0, 41)
    # One set of log bins for every alpha, spanning the widest spread (the largest alpha's).
    # A large alpha drives the weights of high-margin points below the smallest float (exactly 0),
    # which a log axis cannot show: the bins span the positive weights, and the zeros are drawn
    # in the leftmost bin and counted in the legend.
    relative = np.concatenate([n * s for s in weights.values()])
    positive = relative[relative > 0]  # never empty: each alpha's weights sum to 1
    floor = float(positive.min()) * 0.9
    weight_bins = np.geomspace(floor, float(positive.max()) * 1.1, 41)
    for alpha, s in weights.items():
        label = "uniform (alpha = 0)" if alpha == 0 else f"alpha = {alpha:g}"
        left.hist(margin, bins=margin_bins, weights=s, histtype="step", linewidth=1.6, label=label)
        if alpha > 0:  # alpha = 0 puts every weight at exactly 1: the dashed line
            zeros = int((s == 0).sum())
            if zeros:
                label += f" ({zeros} weights underflow to 0, drawn at the left edge)"
            right.hist(np.maximum(n * s, floor), bins=weight_bins, histtype="step", linewidth=1.6, label=label)
    left.set_xlabel(f"margin at the {attack} point  (p_y - max_{{t != y}} p_t)")
    left.set_ylabel("attacker's mass  (sum of s_i / sum_j s_j)")
    left.set_title("where the attacker puts its mass")
    left.axvline(0.0, color="gray", linewidth=0.8, linestyle="--")
    left.legend(fontsize="small")
    right.set_xscale("log")
    # Plain numbers at 1-2-5 steps: matplotlib's default labels every minor tick of a short log axis.
    right.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    right.xaxis.set_major_formatter(FormatStrFormatter("%g"))
    right.xaxis.set_minor_formatter(NullFormatter())
    right.axvline(1.0, color="gray", linewidth=0.8, linestyle="--")
    right.set_xlabel("N * normalized weight  (1 = uniform)")
    right.set_ylabel("examples")
    right.set_title("spread of the weights")
    if any(alpha > 0 for alpha in weights):
        right.legend(fontsize="small")
    else:  # only alpha_test = 0 was evaluated: nothing but the dashed line
        right.text(0.5, 0.5, "alpha_test = 0 only: every weight is 1", transform=right.transAxes, ha="center")
    fig.suptitle(f"{name}: normalized weights of {n} {attack} points")
    return _save(fig, out_dir / f"weights-{_safe_name(name)}")


def make_plots(results_dir: str | Path, output_dir: str | Path | None = None, runs: list[str] | None = None) -> Plots:
    """The metrics figure per data set and a weights figure per result (or per ``runs``)."""
    found = gather(results_dir)
    if not found.summaries:
        raise nothing_found(results_dir, found)
    out_dir = Path(output_dir) if output_dir is not None else Path(results_dir) / "plots"
    names = [r.name for r in found.summaries]
    unknown = [r for r in runs or [] if r not in names]
    if unknown:
        raise WmrbenchError(f"no result named {', '.join(unknown)} under {results_dir}; there are: {', '.join(names)}")
    files: list[Path] = []
    warnings = list(found.warnings)
    for dataset in sorted({r.summary.dataset for r in found.summaries}):
        try:  # one data set's figure failing never costs the others'
            files += plot_metrics([r for r in found.summaries if r.summary.dataset == dataset], dataset, out_dir)
        except (WmrbenchError, ValueError, ArithmeticError) as exc:
            warnings.append(f"no metrics plot for {dataset}: {first_line(exc, with_type=True)}")
    for result in found.summaries:
        if runs and result.name not in runs:
            continue
        records = result.folder / "records.csv"
        if not records.is_file():
            warnings.append(f"no weights plot for {result.name}: {records} is missing")
            continue
        try:  # one bad records file costs its own plot, never the others
            files += plot_weights(records, result.name, result.summary.metrics.alphas, out_dir,
                                  attack_names([result.summary])[0])
        except WmrbenchError as exc:
            warnings.append(f"no weights plot for {result.name}: {exc}")
        except (ValueError, ArithmeticError) as exc:  # a degenerate result that no check foresaw
            warnings.append(f"no weights plot for {result.name}: {first_line(exc, with_type=True)}")
    return Plots(files, warnings)
