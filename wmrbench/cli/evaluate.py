"""``wmrbench evaluate``: A_nat, A_rob, and A_sa / A_tr for each alpha_test."""

from __future__ import annotations

from typing import Annotated

import typer

from wmrbench.cli.common import user_errors
from wmrbench.config import DatasetName, Precision, Start, parse_alphas, parse_enum

PRESET = "default: the paper's evaluation attack for the dataset"


def evaluate(
    checkpoint: Annotated[str, typer.Option(help="A wmrbench checkpoint (last.pt) or a plain state_dict (with --arch).")],
    arch: Annotated[str | None, typer.Option(help="Architecture of a plain state_dict (e.g. smallcnn).")] = None,
    dataset: Annotated[str | None, typer.Option(help="digits | mnist | cifar10 | tinyimagenet (default: the checkpoint's).")] = None,
    data_dir: Annotated[str | None, typer.Option(help="Folder holding the data set files (default data).")] = None,
    download: Annotated[bool, typer.Option("--download", help="Fetch the data set into --data-dir first if it is missing (needs the internet; cifar10 via torchvision, tinyimagenet, mnist).")] = False,
    verify_checksums: Annotated[bool | None, typer.Option("--verify-checksums/--no-verify-checksums", help="Check the CIFAR-10 files against torchvision's published MD5s (default: yes; the other data sets have no per-file checksums).")] = None,
    eps: Annotated[float | None, typer.Option(help=f"L-inf radius ({PRESET}).")] = None,
    step_size: Annotated[float | None, typer.Option(help=f"PGD step size ({PRESET}).")] = None,
    steps: Annotated[int | None, typer.Option(help=f"PGD steps ({PRESET}).")] = None,
    restarts: Annotated[int | None, typer.Option(help="Random restarts; each example keeps its lowest-margin one (default 1).")] = None,
    start: Annotated[str | None, typer.Option(help="uniform (Madry; default) | normal (0.001*N(0,I)) | zero.")] = None,
    alpha_test: Annotated[str, typer.Option(help="Comma-separated alpha_test values for A_sa and A_tr.")] = "1,1.5,2",
    n_examples: Annotated[int | None, typer.Option(help="Evaluate the first N test examples (default: all).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Examples per batch and process; each batch is stacked once per alpha (default 256). Results do not depend on it.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the random starts, keyed per example (default 0).")] = None,
    device: Annotated[str | None, typer.Option(help="auto | cpu | cuda | cuda:N (default auto).")] = None,
    precision: Annotated[str | None, typer.Option(help="bf16 | fp32 (default: bf16 on CUDA, fp32 on CPU).")] = None,
    results_dir: Annotated[str | None, typer.Option(help="Results go to RESULTS_DIR/RUN/ (default results).")] = None,
    run: Annotated[str | None, typer.Option(help="Result name (default: the checkpoint's run).")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Evaluate a model under uniform (A_rob) and non-uniform (A_sa, A_tr) attacks.

    Under torchrun the examples are split over the processes; the result is the same.
    """
    from wmrbench import distributed
    from wmrbench.evaluation import evaluate_checkpoint
    from wmrbench.report import non_uniform_table, print_table

    with user_errors(), distributed.session():
        overrides = dict(
            eps=eps, step_size=step_size, steps=steps, restarts=restarts,
            start=None if start is None else parse_enum(Start, start, "start"),
            alpha_test=parse_alphas(alpha_test), n_examples=n_examples, batch_size=batch_size,
            seed=seed, data_dir=data_dir, device=device,
            precision=None if precision is None else parse_enum(Precision, precision, "precision"),
            results_dir=results_dir, download=download or None, verify_checksums=verify_checksums,
        )
        result = evaluate_checkpoint(
            checkpoint, arch, None if dataset is None else parse_enum(DatasetName, dataset, "dataset"),
            run, overrides, show_progress=not quiet,
        )
    if not distributed.is_main_process():
        return
    m = result.summary["metrics"]
    print_table(non_uniform_table([result.summary]), f"{result.summary['run']}: {m['n_examples']} examples")
    typer.echo(f"results: {result.out_dir}")
