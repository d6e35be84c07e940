"""``evaluate --keep-examples K``: the K examples that decide A_sa, kept beside the records.

After the records are written, the K examples with the largest share of the normalized weight
at the largest alpha_test are attacked again, alone, with the same keyed starts (seed, example
index) in a batch of the evaluation's size, so their points are the ones the records scored.
That is checked: each point's margin and verdict must match its record, or nothing is written
and the caller is told why. The file (:mod:`wmrbench.results.points`) is a few images, not the whole
adversarial set: what the HTML report shows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from wmrbench.core.config import EvalConfig
from wmrbench.data import ImageSet
from wmrbench.core.errors import WmrbenchError
from wmrbench.evaluation.scorers import PointsScorer
from wmrbench.results.points import EXAMPLES_NAME, DecidingExamples, deciding_order, save_examples
from wmrbench.results.records import RECORDS_NAME, sha256_file
from wmrbench.core.runtime import prepare_input, prepare_model

# float32 margins of the same point computed in a batch of other examples: equal up to rounding.
MARGIN_TOLERANCE = 1e-4


def deciding_examples(model: nn.Module, data: ImageSet, cfg: EvalConfig, records: pd.DataFrame, keep: int,
                      device: torch.device) -> DecidingExamples:
    """The ``keep`` deciding examples of ``records`` (rows in data order), attacked again."""
    alpha = float(max(cfg.alpha_test)) if cfg.alpha_test else 0.0
    order, share = deciding_order(records["pgd_margin"].to_numpy(), alpha, keep)
    rows = torch.from_numpy(order.astype(np.int64))
    size = max(len(rows), min(cfg.batch_size, len(data)))
    pad = torch.cat([rows, rows[-1:].repeat(size - len(rows))]) if size > len(rows) else rows
    model = prepare_model(model, device).eval()
    index = pad.to(device)
    x = prepare_input(data.to(device).images(index), device)
    y = data.y.to(device)[index]
    found = PointsScorer(cfg)(model, index, x, y)
    k = len(rows)
    x_adv = found["pgd_x_adv"][:k].detach()
    with torch.no_grad():
        pred = model(x_adv).argmax(dim=1).cpu()
    margin = found["pgd_margin"][:k].detach().cpu().double().numpy()
    recorded = records["pgd_margin"].to_numpy()[order]
    same_verdict = found["pgd_correct"][:k].cpu().numpy().astype(bool) == records["pgd_correct"].to_numpy()[order].astype(bool)
    if not same_verdict.all() or np.abs(margin - recorded).max(initial=0.0) > MARGIN_TOLERANCE:
        raise WmrbenchError("the kept examples' points differ from their records (attacked again, they gave other "
                            "margins): examples.pt is not written")
    return DecidingExamples(
        run=cfg.run, alpha=alpha, n_examples=len(records), index=torch.as_tensor(records["index"].to_numpy()[order]),
        label=y[:k].cpu(), pred=pred, x=x[:k].detach().cpu(), x_adv=x_adv.cpu(), margin=torch.from_numpy(recorded).float(),
        share=torch.from_numpy(share[order]),
    )


def write_examples(folder: Path, model: nn.Module, data: ImageSet, cfg: EvalConfig, records: pd.DataFrame, keep: int,
                   device: torch.device) -> Path:
    """``folder/examples.pt``, tied to the records beside it by their SHA-256."""
    found = deciding_examples(model, data, cfg, records, keep, device)
    digest = sha256_file(folder / RECORDS_NAME) if (folder / RECORDS_NAME).is_file() else ""
    return save_examples(folder / EXAMPLES_NAME, DecidingExamples(**{**found.__dict__, "records_sha256": digest}))
