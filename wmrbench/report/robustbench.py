"""``leaderboard --format robustbench``: one JSON per result in RobustBench's ``model_info``
layout (``<dataset>/<Linf|L2>/<name>.json``), so results can sit beside RobustBench's own.

RobustBench's fields, exactly as its repository's ``model_info/`` files spell them (accuracies
and eps are strings there too): link, name, authors, additional_data, number_forward_passes,
dataset, venue, architecture, eps, clean_acc, reported, autoattack_acc (only when AutoAttack
ran), footnote, unreliable. What wmrbench does not know about a model (its paper, authors,
venue, training data) is left empty, never invented. wmrbench's own numbers (A_rob, A_sa, A_tr,
A_wc per alpha_test) and the protocol they were measured under go in one extra ``wmrbench``
object, which RobustBench's tools ignore.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from wmrbench.core.config import number_key, to_jsonable
from wmrbench.core.errors import WmrbenchError
from wmrbench.core.io import atomic_write_text
from wmrbench.results.records import Summary
from wmrbench.report.tables import defense_label, eps_text, protocol_columns, protocol_text


def _accuracy(value: float) -> str:
    return f"{value:.2f}"


def model_info(summary: Summary, name: str) -> dict[str, Any]:
    """One result as a RobustBench model_info record, plus wmrbench's fields."""
    metrics, model = summary.metrics, summary.model
    info: dict[str, Any] = {
        "link": "", "name": name, "authors": "", "additional_data": None, "number_forward_passes": 1,
        "dataset": summary.dataset, "venue": "", "architecture": model.arch or "",
        "eps": eps_text(summary.config.attack.eps), "clean_acc": _accuracy(metrics.A_nat), "reported": "",
    }
    attack = protocol_columns(summary.config, metrics.n_examples)["Attack"]
    if attack.lower().startswith("autoattack"):
        info["autoattack_acc"] = _accuracy(metrics.A_rob)
    info["footnote"] = f"Evaluated by wmrbench: {protocol_text(summary.config)}, {metrics.n_examples} examples."
    info["unreliable"] = False
    info["wmrbench"] = {
        "defense": defense_label(model), "alpha_train": model.alpha_train,
        "A_rob": _accuracy(metrics.A_rob),
        # the file's document: alpha_test keys by their names ('2', '1.5'), as in summary.json
        "A_sa": {number_key(a): _accuracy(v) for a, v in metrics.A_sa.items()},
        "A_tr": {number_key(a): _accuracy(v) for a, v in metrics.A_tr.items()},
        "A_wc": {number_key(a): _accuracy(v) for a, v in metrics.A_wc.items()},  # wmrbench's extension, not the paper's
        "protocol": protocol_columns(summary.config, metrics.n_examples),
        "schema": summary.schema,
    }
    unc = summary.uncertainty
    if unc is not None:  # each accuracy's 95% interval, as strings like the accuracies
        def pair(interval: tuple[float, float] | None) -> list[str] | None:
            return None if interval is None else [_accuracy(interval[0]), _accuracy(interval[1])]

        info["wmrbench"]["intervals"] = {
            "method": unc.method, "level": unc.level, "resamples": unc.resamples, "seed": unc.seed,
            "clean_acc": pair(unc.interval("A_nat")), "A_rob": pair(unc.interval("A_rob")),
            **{m: {number_key(a): pair(unc.interval(m, a)) for a in getattr(metrics, m)} for m in ("A_sa", "A_tr", "A_wc")},
            "n_eff": to_jsonable(unc.n_eff),
        }
    return info


def write_model_infos(summaries: list[Summary], names: list[str], out_dir: Path) -> list[Path]:
    """``out_dir/<dataset>/<threat model>/<name>.json`` for every result, written atomically."""
    paths: dict[Path, str] = {}
    for summary, name in zip(summaries, names, strict=True):
        threat = protocol_columns(summary.config, 0)["Norm"]  # "Linf" or "L2", RobustBench's names
        path = out_dir / summary.dataset / threat / f"{name.replace('/', '_')}.json"
        if path in paths:  # "a/b" and "a_b" flatten to one file name: one would silently replace the other
            raise WmrbenchError(f"results {paths[path]!r} and {name!r} would both be written to {path}; rename one of them")
        paths[path] = name
    files = []
    for path, summary, name in zip(paths, summaries, names, strict=True):
        files.append(atomic_write_text(path, json.dumps(model_info(summary, name), indent=2) + "\n"))
    return files
