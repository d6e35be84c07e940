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
    reference: Annotated[str | None, typer.Option(help="A second checkpoint (e.g. the unweighted baseline): its own PGD points, transferred, must not beat the audited model's own (check 5). A plain state_dict takes --reference-arch.", rich_help_panel=p.MODEL)] = None,
    reference_arch: Annotated[str | None, typer.Option(help="Architecture of a plain-state_dict --reference (default: --arch).", rich_help_panel=p.MODEL)] = None,
    data: Any = p.DATA,
    budget: Any = p.BUDGET,
    start: p.StartOpt = None,
    protocol: p.ProtocolOpt = None,
    norm: p.NormOpt = None,
    n_examples: Annotated[int | None, typer.Option(help="Audit the first N test examples (default 500).")] = None,
    runtime: Any = p.RUNTIME,
    run: Annotated[str | None, typer.Option(help="Write RESULTS_DIR/RUN/audit.json (default: the checkpoint's run, the model id, or the function's name).")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Smaller budgets for a first look or a test: steps 10/20/40, restarts 1/2, Square 300 queries (default: steps 10/40/100, restarts 1/5 up to the base steps, Square 1000 queries).")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Run every attack again. Without it, the attacks an earlier audit of the same model, examples and settings finished (RESULTS_DIR/RUN/audit/) are read back, so a killed audit continues where it stopped.")] = False,
    quiet: p.Quiet = False,
    **given: Any,
) -> None:
    """Check a model for the known signs of gradient masking: one line per check, pass / warn / fail.

    1. PGD reaches ~0 robust accuracy at eps 0.5 and 1 (a table and a plot).
    2. More steps (10/40/100) and restarts (1/5, at 10 and 40 steps) never raise robust accuracy.
    3. No white-box attack is weaker than the black-box Square attack.
    4. Logit-scaling PGD (pgd-lsa) and margin PGD (pgd-cw) are not stronger than PGD-CE.
    5. Points transferred from --reference are not stronger than the model's own.
    6. The same comparisons on A_sa and A_tr at alpha 1 and 2; A_wc over every attack.
    Writes audit.json, audit.md and audit-eps.png into RESULTS_DIR/RUN/; the leaderboard shows the verdict.
    """
    from wmrbench.audit import lines, run_audit
    from wmrbench.errors import WmrbenchError
    from wmrbench.models import MODEL_OPTIONS, model_sources

    with user_errors():
        options = o.options_from(o.EVAL_SETTINGS, {**locals(), **given})
        o.note_precision(options)
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
