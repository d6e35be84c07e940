"""``wmrbench audit``: plan the stages, run (or read back) each, judge the checks, write
``audit.json`` and ``audit.md`` (and the eps-sweep plot) beside the model's results."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from wmrbench.audit import checks as c
from wmrbench.audit import report
from wmrbench.audit.config import AUDIT_ALPHAS, DEFAULT_N_EXAMPLES, AuditConfig
from wmrbench.audit.config import quick as quick_config
from wmrbench.audit.stages import (
    STAGES_DIR, Fingerprint, Stage, adaptive_stages, base_stage, budget_stages, eps_stages, square_stage, run_stage,
)
from wmrbench.audit.transfer import transfer_records
from wmrbench.core import distributed
from wmrbench.core.config import DatasetName, EvalConfig
from wmrbench.data import ImageSet
from wmrbench.core.errors import WmrbenchError, render_settings, setting
from wmrbench.evaluation.partial import model_sha256, tensors_sha256
from wmrbench.evaluation.pipeline import check_model_fits, load_model, plan, prepare, result_dir
from wmrbench.core.io import lock_folder, remove_file
from wmrbench.models.source import ModelSource, open_source

SUGGEST = {
    3: "a gradient-free attack finds errors the gradient attacks miss: obfuscated or masked gradients; "
       "report Square / AutoAttack, not PGD",
    4: "a rescaled or logit-level loss beats PGD-CE: a saturated softmax hides the gradient (logit scaling, as "
       "found in GAIRAT); PGD-CE's numbers overstate robustness",
    5: "points crafted on another model beat the model's own white-box points: its own gradients mislead the "
       "attack (masking)",
}


@dataclass(frozen=True)
class AuditResult:
    cfg: AuditConfig
    checks: list[c.Check]
    status: str  # the worst check (fail > warn > pass)
    folder: Path
    files: list[Path]


def audit_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The audit's base evaluation: A_sa / A_tr at :data:`AUDIT_ALPHAS`, 500 examples unless told.

    Only None means "not given": 0 examples or an empty alpha list go on to the evaluation's own
    checks and are refused there, as ``evaluate`` refuses them (``or`` would audit 500 images)."""
    alphas, n_examples = options.get("alpha_test"), options.get("n_examples")
    return {**options, "alpha_test": AUDIT_ALPHAS if alphas is None else alphas,
            "n_examples": DEFAULT_N_EXAMPLES if n_examples is None else n_examples}


def check_reference(reference: ModelSource, audited_arch: str | None, base: EvalConfig, data: ImageSet) -> None:
    """The ``reference`` model can be built and takes the audit's images, or one line that names
    the option: its file, the data set it was trained on, the architecture. A wmrbench checkpoint
    is built as it records; a plain state_dict as ``reference.arch``, else the audited model's."""
    name = f"{setting('reference')} {reference.checkpoint or reference.model_id or reference.factory}"
    try:
        opened = open_source(reference)
        trained_on = opened.recorded_dataset
        if trained_on is not None and trained_on != base.dataset.value:
            raise WmrbenchError(f"was trained on {trained_on}, and the audit is on {base.dataset.value}; give a reference "
                                f"trained on {base.dataset.value}")
        if reference.arch is None and not opened.train_config.get("arch"):
            if audited_arch is None:
                raise WmrbenchError(f"a plain state_dict: say which architecture with {setting('reference_arch')}")
            opened = open_source(dataclasses.replace(reference, arch=audited_arch))
        check_model_fits(load_model(opened, base.run, base.dataset)[0], data, "its model")
    except WmrbenchError as exc:
        raise WmrbenchError(f"{name}: {exc}") from None


def run_audit(
    source: ModelSource, options: Mapping[str, Any], *, quick: bool = False, dataset: DatasetName | str | None = None, run: str | None = None, reference: ModelSource | None = None,
    show_progress: bool = True, overwrite: bool = False,
) -> AuditResult:
    """Audit the model ``source`` names, with ``evaluate``'s options and model loading (``quick``:
    :func:`.config.quick`'s smaller budgets). Stages saved by an earlier run of the same audit
    are read back (``overwrite`` runs them all again)."""
    opened, base = plan(source, audit_options(options), dataset, run)
    distributed.resolve_device(base.device)  # a device that cannot run is refused before any work
    cfg = AuditConfig(base=base, reference=" ".join(reference.command_options()) if reference is not None else None)
    cfg = quick_config(cfg) if quick else cfg
    folder = result_dir(base)
    stages_dir = folder / STAGES_DIR
    with lock_folder(stages_dir, "audit", f"wait for it to finish, or choose another {setting('run')}"):
        if overwrite:
            for old in stages_dir.glob("*.json"):
                remove_file(old)
        prepared = prepare(opened, base)
        model, data = prepared.model, prepared.data
        if reference is not None:  # a bad reference ends here, before any attack runs
            check_reference(reference, source.arch or opened.train_config.get("arch"), base, data)
        fingerprint = Fingerprint(model_sha256(model), tensors_sha256([("x", data.x), ("y", data.y)]), base.seed,
                                  base.precision.value)

        frames: dict[str, pd.DataFrame] = {}

        def run(stage: Stage) -> str:
            if stage.name not in frames:
                frames[stage.name] = run_stage(model, data, stage, base, stages_dir, fingerprint, show_progress)
            return stage.name

        base_name = run(base_stage(cfg))
        by_eps = {base.attack.eps: base_name, **{s.config.eps: run(s) for s in eps_stages(cfg)}}
        grid = {(s.config.steps, s.config.restarts): run(s) for s in budget_stages(cfg)}
        adaptive = [run(s) for s in adaptive_stages(cfg)]
        square = run(square_stage(cfg))
        transfer = None
        if reference is not None:
            transfer = "transfer"
            frames[transfer] = transfer_records(reference, base, model, data, stages_dir, fingerprint, show_progress)

        tol, alphas = cfg.tolerances, base.alpha_test
        found = [c.eps_sweep(frames, by_eps, alphas, tol)]
        check, pairs = c.budget(frames, grid, tol)
        found.append(check)
        white = [base_name, *[n for (steps, _), n in grid.items() if steps >= base.attack.steps and n != base_name],
                 *adaptive]
        # One white-box attack weaker than Square is a warning (Square is often the strongest single
        # attack on MNIST); all of them together weaker is a fail: no gradient found what Square found.
        single, single_pairs = c.versus(3, "no white-box attack weaker than Square", frames, white, square, tol,
                                        SUGGEST[3], cap=c.WARN)
        frames["white-box (worst case)"] = _worst_frame(frames, white)
        together, _ = c.versus(3, "", frames, ["white-box (worst case)"], square, tol, SUGGEST[3])
        found.append(dataclasses.replace(single, status=c.worst([single.status, together.status]),
                                         detail=f"{single.detail}; {together.detail}",
                                         numbers={**single.numbers, "worst case": together.numbers}))
        pairs += single_pairs
        check, more = c.versus(4, "pgd-lsa and pgd-cw not stronger than PGD-CE", frames, [base_name], adaptive[0], tol,
                               SUGGEST[4])
        check2, more2 = c.versus(4, "", frames, [base_name], adaptive[1], tol, SUGGEST[4])
        found.append(dataclasses.replace(check, status=c.worst([check.status, check2.status]),
                                         detail=f"{check.detail}; {check2.detail}",
                                         numbers={"pairs": check.numbers["pairs"] + check2.numbers["pairs"]}))
        pairs += more + more2
        if transfer is not None:
            check, more = c.versus(5, "transferred points not stronger than its own", frames, [base_name], transfer,
                                   tol, SUGGEST[5])
            found.append(check)
            pairs += more
        else:
            found.append(c.Check(5, "transferred points not stronger than its own", c.NOT_RUN,
                                 render_settings(f"no {setting('reference')} model given"), SUGGEST[5]))
        inside = [base_name, *grid.values(), *adaptive, square, *([transfer] if transfer else [])]
        found.append(c.weighted_check(frames, pairs, alphas, inside, tol))
        found = c.too_few(found, len(frames[base_name]), tol)
        status = c.worst([ch.status for ch in found])
        del frames["white-box (worst case)"]
        files = report.write(folder, cfg, prepared.info, found, status, frames, by_eps, grid,
                             fingerprint.model_sha256, fingerprint.data_sha256)
    return AuditResult(cfg, found, status, folder, files)


def _worst_frame(frames: dict[str, pd.DataFrame], names: list[str]) -> pd.DataFrame:
    """A stage-like frame whose ``pgd_correct`` is, per example, wrong if any of ``names`` is."""
    frame = frames[names[0]][["index", "label", "clean_correct", "clean_margin"]].copy()
    wrong = sum((~frames[n]["pgd_correct"].astype(bool)).astype(int) for n in names)
    frame["pgd_correct"] = (wrong == 0).astype(int)
    return frame
