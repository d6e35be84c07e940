"""``wmrbench audit``: the gradient-masking checklist on one model."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from wmrbench.cli import options as o
from wmrbench.cli import params as p
from wmrbench.cli.common import user_errors


@p.command
def audit(
    model_id: p.ModelId = None,
    model_source: Any = p.MODEL_SOURCE,
    data: Any = p.DATA,
    n_examples: p.AuditNExamples = None,
    quick: p.AuditQuick = False,
    run: p.AuditRun = None,
    reference: p.Reference = None,
    reference_arch: p.ReferenceArch = None,
    budget: Any = p.BUDGET,
    norm: p.NormOpt = None,
    protocol: p.ProtocolOpt = None,
    start: p.StartOpt = None,
    seed: p.Seed = None,
    results_dir: p.ResultsDir = None,
    overwrite: p.AuditOverwrite = False,
    quiet: p.Quiet = False,
    runtime: Any = p.RUNTIME_GROUP,
    **given: Any,
) -> None:
    """Check a model for the signs of gradient masking: pass, warn or fail per check.

    1. PGD reaches ~0 robust accuracy at eps 0.5 and 1 (a table and a plot).
    2. More steps (10/40/100) and restarts (1/5, at 10 and 40 steps) never raise robust accuracy.
    3. No white-box attack is weaker than the black-box Square attack.
    4. Logit-scaling PGD (pgd-lsa) and margin PGD (pgd-cw) are not stronger than PGD-CE.
    5. Points transferred from --reference are not stronger than the model's own.
    6. The same comparisons on A_sa and A_tr at alpha 1 and 2; A_wc over every attack.
    Writes audit.json, audit.md and audit-eps.png into RESULTS_DIR/RUN/ (docs/audit.md).
    """
    from wmrbench.audit import lines, run_audit
    from wmrbench.core.errors import WmrbenchError
    from wmrbench.models import MODEL_OPTIONS, model_sources

    with user_errors():
        options = o.options_from(o.EVAL_SETTINGS, {**locals(), **given})
        o.note_precision(options.get("precision"))
        sources = o.sources_of(given, [model_id] if model_id else None)
        ref = None
        if reference is not None:
            # its own recorded architecture first; --arch only for a plain state_dict (check_reference)
            ref = model_sources(reference, reference_arch, None, None, None, None, None, None)[0]
        if not sources:
            raise WmrbenchError(f"say which model to audit: {MODEL_OPTIONS}")
        result = run_audit(sources[0], options, quick=quick, dataset=given["dataset"], run=run, reference=ref,
                           show_progress=not quiet, overwrite=overwrite)
    for line in lines(result.checks, result.status):
        typer.echo(line)
    typer.echo(f"written: {', '.join(str(f) for f in result.files)}")
