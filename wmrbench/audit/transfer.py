"""Check 5's points: the reference model's own attack, saved with ``wmrbench attack``'s machinery
(:func:`wmrbench.evaluation.run_attack`, the adversarial-file format) and scored on the audited
model with ``evaluate --adversarial``'s scorer (:class:`wmrbench.evaluation.ReplayScorer`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from torch import nn

from wmrbench.audit.stages import Fingerprint, load_saved, save
from wmrbench.core.config import EvalConfig, to_jsonable
from wmrbench.data import ImageSet
from wmrbench.core.errors import WmrbenchError, setting
from wmrbench.evaluation.partial import model_sha256
from wmrbench.evaluation.pipeline import collect, load_model, records_frame
from wmrbench.evaluation.runs import options_of, run_attack
from wmrbench.evaluation.scorers import ReplayScorer
from wmrbench.models.source import ModelSource, open_source

NAME = "transfer"
POINTS = "reference-adversarial.pt"


def transfer_records(
    reference: ModelSource, base: EvalConfig, model: nn.Module, data: ImageSet, folder: Path,
    fingerprint: Fingerprint, show_progress: bool,
) -> pd.DataFrame:
    """Records of ``model`` at the points ``base``'s attack (PGD-CE and its weighted form at each
    alpha) found on ``reference``, the same examples; read back when saved with the same plan."""
    reference_model, _ = load_model(open_source(reference), base.run, base.dataset)
    record = {"stage": {"name": NAME, "reference": to_jsonable(reference),
                        "reference_sha256": model_sha256(reference_model), "attack": to_jsonable(base.attack),
                        "method": base.method.value},
              "alpha_test": list(base.alpha_test), **to_jsonable(fingerprint)}
    saved = load_saved(folder, NAME, record)
    if saved is not None:
        return saved
    _, adv = run_attack(reference, options_of(base), base.dataset, run=f"{base.run}-reference",
                        output=str(folder / POINTS), show_progress=show_progress, overwrite=True)
    images = data.images(torch.arange(len(data))).float().cpu()
    if len(adv.label) != len(data) or not torch.equal(adv.x.cpu(), images) or not torch.equal(adv.label.cpu(), data.y.cpu()):
        raise WmrbenchError("the reference model was attacked on other examples than the audited one: give both "
                            f"the same {setting('dataset')}, {setting('data_dir')} and {setting('n_examples')}")
    scorer = ReplayScorer(adv, base)
    frame = records_frame(collect(model, ImageSet(adv.x, adv.label), base, scorer, show_progress, "audit transfer"))
    save(folder, NAME, record, frame)
    return pd.read_csv(folder / f"{NAME}.csv")
