"""What an audit writes beside the model's results: ``audit.json`` (every check, every stage's
metrics, the full config, the versions), ``audit.md`` (the same for people) and
``audit-eps.png`` (the eps sweep). Each file is written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from wmrbench.audit.checks import Check, weighted_metrics
from wmrbench.audit.config import AuditConfig
from wmrbench.core.config import to_jsonable
from wmrbench.core.io import atomic_write, atomic_write_json, atomic_write_text
from wmrbench.results.metrics import accuracy
from wmrbench.results.records import ModelInfo
from wmrbench.core.runtime import provenance

AUDIT_JSON, AUDIT_MD, AUDIT_PLOT = "audit.json", "audit.md", "audit-eps.png"


def stage_metrics(frame: pd.DataFrame, alphas: tuple[float, ...]) -> dict[str, float]:
    return {"A_nat": accuracy(frame["clean_correct"].to_numpy()), "A_rob": accuracy(frame["pgd_correct"].to_numpy()),
            **weighted_metrics(frame, alphas)}


def lines(checks: list[Check], status: str) -> list[str]:
    """What ``audit`` prints: one line per check, then the verdict."""
    return [check.line() for check in checks] + [f"audit: {status}"]


def write(
    folder: Path, cfg: AuditConfig, model: ModelInfo, checks: list[Check], status: str,
    frames: dict[str, pd.DataFrame], by_eps: dict[float, str], grid: dict[tuple[int, int], str],
    model_sha256: str, data_sha256: str,
) -> list[Path]:
    alphas = cfg.base.alpha_test
    stages = {name: stage_metrics(frame, alphas) for name, frame in frames.items()}
    doc: dict[str, Any] = {
        "status": status,
        "checks": [to_jsonable(c.__dict__) for c in checks],
        "stages": stages,
        "n_examples": int(len(next(iter(frames.values())))),
        # What the verdict belongs to: the leaderboard shows it only beside a result of the same
        # weights and examples (summary.json records the same two hashes), and "stale" elsewhere.
        "model_sha256": model_sha256,
        "data_sha256": data_sha256,
        "model": to_jsonable(model),
        "config": to_jsonable(cfg),
        "versions": provenance(),
    }
    files = [_plot(folder / AUDIT_PLOT, by_eps, frames, alphas)]
    files.append(atomic_write_text(folder / AUDIT_MD, _markdown(cfg, model, checks, status, stages, by_eps, grid)))
    # The json last: it is what the leaderboard reads, and it names the other two.
    files.append(atomic_write_json(folder / AUDIT_JSON, doc))
    return files


def _markdown(cfg: AuditConfig, model: ModelInfo, checks: list[Check], status: str, stages: dict[str, dict[str, float]],
              by_eps: dict[float, str], grid: dict[tuple[int, int], str]) -> str:
    base = cfg.base
    n = next(iter(stages.values()))
    out = [f"# Audit of {base.run}: {status}", "",
           f"{model.name}, {base.dataset.value}, first {base.n_examples} test examples, eps {base.attack.eps:g} "
           f"(L{'inf' if base.attack.norm.value == 'linf' else '2'}), base attack PGD-{base.attack.steps} step "
           f"{base.attack.step_size:g}, {base.precision.value}, seed {base.seed}.", "",
           "| # | check | status | numbers | a fail suggests |", "| --- | --- | --- | --- | --- |"]
    out += [f"| {c.number} | {c.name} | {c.status} | {c.detail} | {c.suggests} |" for c in checks]
    keys = [k for k in n if k != "A_nat"]
    out += ["", "## eps sweep (PGD-CE)", "", f"![eps sweep]({AUDIT_PLOT})", "",
            "| eps | " + " | ".join(keys[:1] + [k for k in keys if k.startswith("A_sa")]) + " |",
            "| ---: | " + " | ".join("---:" for _ in keys[:1] + [k for k in keys if k.startswith("A_sa")]) + " |"]
    for eps, name in sorted(by_eps.items()):
        row = stages[name]
        out.append(f"| {eps:g} | " + " | ".join(f"{row[k]:.2f}" for k in keys if k == "A_rob" or k.startswith("A_sa")) + " |")
    out += ["", "## Every attack (same examples)", "", "| stage | " + " | ".join(["A_nat", *keys]) + " |",
            "| --- | " + " | ".join("---:" for _ in ["A_nat", *keys]) + " |"]
    for name, row in stages.items():
        out.append(f"| {name} | " + " | ".join(f"{row[k]:.2f}" if k in row else "-" for k in ["A_nat", *keys]) + " |")
    tol = cfg.tolerances
    out += ["", f"Tolerances: A_rob comparisons are paired (McNemar's exact test): fail beyond {tol.fail_points:g} "
            f"points with p < {tol.p_value:g}, warn beyond {tol.warn_points:g}; A_sa / A_tr {tol.weighted_factor:g}x "
            f"wider. Budgets: steps {', '.join(map(str, cfg.steps_grid))} x restarts "
            f"{', '.join(map(str, cfg.restarts_grid))}; pgd-lsa temperatures {', '.join(f'{t:g}' for t in cfg.temperatures)}; "
            f"Square {cfg.square_queries} queries." + (f" Reference: `{cfg.reference}`." if cfg.reference else ""), ""]
    return "\n".join(out)


def _plot(path: Path, by_eps: dict[float, str], frames: dict[str, pd.DataFrame], alphas: tuple[float, ...]) -> Path:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.5, 3.2), layout="constrained")
    ax = fig.add_subplot()
    epss = sorted(by_eps)
    metrics = [stage_metrics(frames[by_eps[e]], alphas) for e in epss]
    for key in ["A_rob", *[k for k in metrics[0] if k.startswith("A_sa")]]:
        ax.plot(epss, [m[key] for m in metrics], marker="o", label=key)
    ax.set_xlabel("eps")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.set_title("PGD-CE: robust accuracy vs eps")
    ax.legend()
    return atomic_write(path, lambda h: fig.savefig(h, format="png", dpi=110, metadata={"Software": None}))
