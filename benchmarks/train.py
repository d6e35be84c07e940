"""Training speed: TRADES+ours on ResNet-18 (CIFAR-10) and on SmallCNN (MNIST, the paper's Table 1
model), each against a plain fp32 loop, and an alpha_train sweep in one process against three runs
one after another.

* ``resnet18``: TRADES+ours (alpha_train 2, 10-step KL attack, eps 0.031, step 0.007, beta 6,
  batch 128) on CIFAR-10-shaped data; seconds extrapolated to a 50,000-image epoch.
* ``smallcnn``: TRADES+ours with the paper's MNIST setting (alpha_train 2, 40-step KL attack,
  eps 0.3, step 0.01, beta 6, batch 128) on MNIST-shaped data; seconds per 60,000-image epoch.
  Both: wmrbench (``training.train_step``, the data resident on the device, the loop ``wmrbench
  train`` runs; ``--precision`` picks bf16 and/or fp32) against a plain fp32 loop built from
  pieces that are not ours: a torch DataLoader over a TensorDataset, torchattacks' TPGD (TRADES'
  KL attack) and the weighted TRADES loss written out plainly. A fixed number of batches is
  timed and extrapolated.
* ``sweep``: ``training.fit_sweep`` training three runs (alpha_train 0, 0.5, 2) side by side
  against ``training.fit`` three times, one run after another, in one process, for whole
  epochs of a real data set (digits by default: embedded; ``--sweep-dataset mnist --data-dir``),
  so data loading and per-step data handling are in the time. The sweep's runs are bit for bit
  the separate runs (checked here, and by tests/training/test_sweep.py).

* ``stack``: the four runs of Table 1 (MNIST SmallCNN: PGD-AT alpha 0 and 0.5, TRADES alpha 0 and
  2; the paper's 40-step attack, batch 128) trained as ONE stacked model
  (:func:`wmrbench.training.stacked.stacked_step`, run by run and through vmap) against the same four
  runs' steps one after another (``training.train_step``), and against one TRADES+ours run alone,
  on MNIST-shaped data, the same batches; seconds extrapolated to a 60,000-image epoch. On CUDA
  the solo run is also timed with its attack eager (no CUDA graph).

    python benchmarks/train.py --quick             # CPU, ~3 minutes on 2 cores
    python benchmarks/train.py --only stack --quick --out benchmarks/reference/cpu-quick/stack.json
    python benchmarks/train.py                     # GPU: 100 batches of 128, bf16 and fp32
    python benchmarks/train.py --only sweep --sweep-dataset mnist --data-dir ../shared/data/mnist
"""

from __future__ import annotations

import contextlib
import copy
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import alternate, command_line, environment, median, parser, print_table, resolve_device, write_result

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wmrbench.core.attack_config import Precision
from wmrbench.core.config import DatasetName, Defense, TrainConfig
from wmrbench.data import ImageSet, batches
from wmrbench.models import create_model
from wmrbench.core.presets import train_config
from wmrbench.core.runtime import prepare_input, prepare_model
from wmrbench.training.stacked import StackedNet, _Masks, stacked_step
from wmrbench.training import fit, fit_sweep, stream_seed, train_step
from wmrbench.training.loop import build as _build

BETA = 6.0
SWEEP_ALPHAS = (0.0, 0.5, 2.0)


@dataclass(frozen=True)
class Setting:
    """One model's training setting, as the preset gives it (the values are the paper's)."""

    arch: str
    dataset: DatasetName  # whose preset the config starts from
    shape: tuple[int, int, int]
    epoch_images: int  # one epoch of the real data set
    alpha_train: float
    eps: float
    step_size: float
    steps: int
    lr: float
    momentum: float
    weight_decay: float


SETTINGS = {
    "resnet18": Setting("resnet18", DatasetName.CIFAR10, (3, 32, 32), 50_000, 2.0, 0.031, 0.007, 10, 0.05, 0.9, 2e-4),
    "smallcnn": Setting("smallcnn", DatasetName.MNIST, (1, 28, 28), 60_000, 2.0, 0.3, 0.01, 40, 0.01, 0.9, 0.0),
}


def config(s: Setting, batch_size: int, precision: Precision, device: torch.device) -> TrainConfig:
    return train_config(
        s.dataset, Defense.TRADES, arch=s.arch, alpha_train=s.alpha_train, beta=BETA, eps=s.eps, step_size=s.step_size,
        steps=s.steps, batch_size=batch_size, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay,
        device=str(device), precision=precision,
    )


def sgd(model: nn.Module, s: Setting) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)


Epoch = Callable[[int | None], Tensor]  # (batches or None for all) -> mean loss (device tensor)


def wmrbench_epoch(model: nn.Module, data: ImageSet, cfg: TrainConfig, s: Setting, device: torch.device) -> Epoch:
    """The loop of training.step.train_epoch: train_step, backward, step; sums stay on the device."""
    model = prepare_model(model, device)
    optimizer = sgd(model, s)
    shuffle = torch.Generator().manual_seed(0)
    attack_rng = torch.Generator(device=device).manual_seed(1)

    def epoch(limit: int | None = None) -> Tensor:
        order = torch.randperm(len(data), generator=shuffle)  # a full permutation, as fit() gives
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device)
        seen = 0
        for step, (_, x, y) in enumerate(batches(data, cfg.batch_size, order)):
            if limit is not None and step == limit:
                break
            objective, adv_margin = train_step(model, prepare_input(x, device), y, cfg, attack_rng, cfg.precision)
            optimizer.zero_grad(set_to_none=True)
            objective.loss.backward()
            optimizer.step()
            loss_sum += objective.loss.detach() * len(y)
            correct += (adv_margin > 0).sum()
            seen += len(y)
        return loss_sum / seen

    return epoch


def plain_epoch(model: nn.Module, x: Tensor, y: Tensor, batch_size: int, s: Setting, device: torch.device) -> Epoch:
    """DataLoader + torchattacks.TPGD + the weighted TRADES loss, fp32, written plainly."""
    import torchattacks

    optimizer = sgd(model, s)
    tpgd = torchattacks.TPGD(model, eps=s.eps, alpha=s.step_size, steps=s.steps)
    dataset = torch.utils.data.TensorDataset(x, y)
    shuffle = torch.Generator().manual_seed(0)

    def epoch(limit: int | None = None) -> Tensor:
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=shuffle,
                                             pin_memory=device.type == "cuda")
        loss_sum = torch.zeros((), device=device)
        seen = 0
        for step, (xb, yb) in enumerate(loader):
            if limit is not None and step == limit:
                break
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            x_adv = tpgd(xb)  # eval mode inside, restored after
            model.train()
            optimizer.zero_grad()
            logits_nat, logits_adv = model(xb), model(x_adv)
            p_adv = F.softmax(logits_adv, dim=1)
            p_true = p_adv.gather(1, yb[:, None]).squeeze(1)
            p_other = p_adv.masked_fill(F.one_hot(yb, 10).bool(), -1.0).max(dim=1).values
            weight = torch.exp(-s.alpha_train * (p_true - p_other))
            kl = F.kl_div(F.log_softmax(logits_adv, dim=1), F.softmax(logits_nat, dim=1), reduction="none").sum(1)
            loss = F.cross_entropy(logits_nat, yb) + BETA * (weight * kl).mean()
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * len(yb)
            seen += len(yb)
        return loss_sum / seen

    return epoch


def model_part(s: Setting, n_batches: int, batch_size: int, precisions: list[Precision], repeats: int,
               device: torch.device) -> tuple[list[dict[str, Any]], dict[str, list[float]], str]:
    """wmrbench at each precision and the plain fp32 loop, timed alternately on the same batches."""
    n = n_batches * batch_size
    generator = torch.Generator().manual_seed(0)
    x_uint8 = torch.randint(0, 256, (n, *s.shape), dtype=torch.uint8, generator=generator)
    y = torch.randint(0, 10, (n,), generator=generator)
    torch.manual_seed(0)
    init = create_model(s.arch, 10, s.shape[0])
    print(f"TRADES+ours (alpha_train {s.alpha_train}), {s.arch}, {n_batches} batches of {batch_size} "
          f"{s.dataset.value}-shaped images, {s.steps}-step attack", flush=True)
    variants: dict[str, Epoch] = {}
    on_device = ImageSet(x_uint8, y).to(device)
    for precision in precisions:
        cfg = config(s, batch_size, precision, device)
        variants[f"{s.arch} wmrbench {precision.value}"] = wmrbench_epoch(copy.deepcopy(init), on_device, cfg, s, device)
    try:
        variants[f"{s.arch} plain fp32 loop (DataLoader + torchattacks TPGD)"] = plain_epoch(
            copy.deepcopy(init).to(device), x_uint8.float().div(255), y, batch_size, s, device)
    except ImportError as exc:
        print(f"  skipped the plain loop: {exc}")
    times, outputs = alternate(
        {name: (lambda e=e: e(None)) for name, e in variants.items()}, repeats, device,
        warmups={name: (lambda e=e: e(1)) for name, e in variants.items()},
    )
    plain = next((median(t) for name, t in times.items() if "plain" in name), None)
    rows = []
    for name, seconds in times.items():
        t = median(seconds)
        rows.append({
            "variant": name, "images": n, "median s": t, "images/s": n / t,
            f"s per {s.epoch_images // 1000}k-image epoch": t * s.epoch_images / n,
            "speed-up vs plain loop": plain / t if plain else None, "final loss": outputs[name].item(),
        })
    return rows, times, print_table(rows, f"TRADES+ours training, {s.arch} (median of {repeats} alternating runs)")


def sweep_part(dataset: DatasetName, data_dir: str, epochs: int, repeats: int, device: torch.device,
               root: Path) -> tuple[list[dict[str, Any]], dict[str, list[float]], dict[str, Any], str]:
    """fit_sweep over three alpha_train values against three fits one after another."""
    counter = iter(range(10**6))

    def cfgs() -> list[TrainConfig]:
        folder = root / f"r{next(counter)}"  # a fresh folder per timed run: no run exists yet
        return [train_config(dataset, Defense.TRADES, run=f"a{alpha:g}", alpha_train=alpha, epochs=epochs,
                             data_dir=data_dir, checkpoint_dir=str(folder), device=str(device))
                for alpha in SWEEP_ALPHAS]

    def sweep() -> list[Path]:
        return [r.checkpoint for r in fit_sweep(cfgs(), show_progress=False).results]

    def one_after_another() -> list[Path]:
        return [fit(cfg, show_progress=False).checkpoint for cfg in cfgs()]

    first = cfgs()[0]
    print(f"alpha_train sweep {SWEEP_ALPHAS}: {dataset.value}, {first.arch}, {epochs} epoch(s) of batch {first.batch_size}, "
          f"{first.attack.steps}-step attack, {first.precision.value}", flush=True)
    variants = {"sweep: 3 runs side by side (fit_sweep)": sweep, "3 runs one after another (fit x3)": one_after_another}
    times, outputs = alternate(variants, repeats, device)
    together, apart = outputs.values()
    same = []
    for a, b in zip(together, apart):
        x, y = (torch.load(p, weights_only=True) for p in (a, b))
        same.append(all(torch.equal(x["model"][k], y["model"][k]) for k in x["model"]))
    t_apart = median(times["3 runs one after another (fit x3)"])
    rows = [{"variant": name, "runs": len(SWEEP_ALPHAS), "epochs": epochs, "median s": median(t),
             "s per run-epoch": median(t) / (len(SWEEP_ALPHAS) * epochs), "speed-up vs one after another": t_apart / median(t)}
            for name, t in times.items()]
    check = {"weights identical (sweep vs separate), per run": same}
    table = print_table(rows, f"alpha_train sweep (median of {repeats} alternating runs); identical weights: {same}")
    return rows, times, check, table


TABLE1_RUNS = ((Defense.PGD, 0.0), (Defense.PGD, 0.5), (Defense.TRADES, 0.0), (Defense.TRADES, 2.0))


def stack_part(n_batches: int, batch_size: int, repeats: int, device: torch.device, steps: int | None = None,
               ) -> tuple[list[dict[str, Any]], dict[str, list[float]], str]:
    """Table 1's four runs stacked (loop and vmap) against their four solo steps one after another,
    and against one TRADES+ours run alone (fp32, the presets' settings), on the same batches."""
    import contextlib

    import wmrbench.attacks.pgd as pgd_module

    n = n_batches * batch_size
    generator = torch.Generator().manual_seed(0)
    x_all = (torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=generator).float() / 255).to(device)
    y_all = torch.randint(0, 10, (n,), generator=generator).to(device)
    given = {"steps": steps} if steps else {}
    cfgs = [train_config(DatasetName.MNIST, defense, alpha_train=alpha, batch_size=batch_size, device=str(device),
                         precision=Precision.FP32, run=f"{defense.value}-a{alpha:g}", **given)
            for defense, alpha in TABLE1_RUNS]
    print(f"Table 1's four runs (MNIST SmallCNN, {cfgs[0].attack.steps}-step attack, fp32): {n_batches} batches of "
          f"{batch_size}, stacked vs one after another", flush=True)

    def fresh() -> list[Any]:
        from types import SimpleNamespace
        runs = []
        for cfg in cfgs:
            model, optimizer, _ = _build(cfg, device)
            runs.append(SimpleNamespace(cfg=cfg, model=model, optimizer=optimizer))
        return runs

    def solo(runs: list[Any], eager: bool = False) -> Callable[[], Tensor]:
        gens = [torch.Generator(device=device).manual_seed(stream_seed(r.cfg.seed, 0, 0, 1)) for r in runs]

        def go() -> Tensor:
            patch = (contextlib.nullcontext() if not eager else
                     _patched(pgd_module, "use_cuda_graph", lambda x, wanted: False))
            total = torch.zeros((), device=device)
            with patch:
                for lo in range(0, n, batch_size):
                    x, y = prepare_input(x_all[lo:lo + batch_size], device), y_all[lo:lo + batch_size]
                    for run, g in zip(runs, gens):
                        objective, _ = train_step(run.model, x, y, run.cfg, g, run.cfg.precision)
                        run.optimizer.zero_grad(set_to_none=True)
                        objective.loss.backward()
                        run.optimizer.step()
                        total += objective.loss.detach()
            return total
        return go

    def stacked(runs: list[Any], impl: str) -> Callable[[], Tensor]:
        net = StackedNet([r.model for r in runs], impl).to(device)
        masks = _Masks(net, cfgs, 0, 0, device, torch.float32)
        gens = [torch.Generator(device=device).manual_seed(stream_seed(r.cfg.seed, 0, 0, 1)) for r in runs]

        def go() -> Tensor:
            total = torch.zeros((), device=device)
            for lo in range(0, n, batch_size):
                x, y = prepare_input(x_all[lo:lo + batch_size], device), y_all[lo:lo + batch_size]
                for objective, _ in stacked_step(net, runs, x, y, gens, masks):
                    total += objective.loss.detach()
            return total
        return go

    variants: dict[str, Callable[[], Tensor]] = {
        "1 run alone (TRADES+ours)": solo(fresh()[3:]),
        "4 runs one after another": solo(fresh()),
        "4 runs stacked, run by run (impl loop)": stacked(fresh(), "loop"),
        "4 runs stacked, vmap (impl vmap)": stacked(fresh(), "vmap"),
    }
    if device.type == "cuda":
        variants["1 run alone (TRADES+ours), attack eager (no CUDA graph)"] = solo(fresh()[3:], eager=True)
    times, _ = alternate(variants, repeats, device)
    one, four = median(times["1 run alone (TRADES+ours)"]), median(times["4 runs one after another"])
    rows = [{"variant": name, "runs": 1 if name.startswith("1 run") else 4, "images": n, "median s": median(t),
             "s per 60k-image epoch (all its runs)": median(t) * 60_000 / n,
             "time / 4 runs one after another": median(t) / four, "time / 1 run alone": median(t) / one}
            for name, t in times.items()]
    return rows, times, print_table(rows, f"Table 1's four runs stacked vs one after another (median of {repeats} alternating runs)")


@contextlib.contextmanager
def _patched(module: Any, name: str, value: Any) -> Any:
    old = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, old)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser("train", __doc__.splitlines()[0])
    p.add_argument("--only", default="resnet18,smallcnn,sweep,stack", help="parts to run, comma-separated (default all)")
    p.add_argument("--batches", type=int, default=None, help="batches per timed run (default 100 on CUDA; quick: 2 for resnet18, 1 for smallcnn)")
    p.add_argument("--batch-size", type=int, default=None, help="default 128 (the paper's); quick resnet18 16")
    p.add_argument("--precision", default=None, help="wmrbench precisions, comma-separated (default bf16,fp32 on CUDA; fp32 on CPU)")
    p.add_argument("--sweep-dataset", default="digits", help="data set of the sweep part (default digits, embedded)")
    p.add_argument("--data-dir", default="data", help="its folder (not needed for digits)")
    p.add_argument("--sweep-epochs", type=int, default=1, help="epochs per run in the sweep part (default 1)")
    p.add_argument("--stack-steps", type=int, default=None, help="attack steps in the stack part (default: the paper's 40)")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    repeats = args.repeats or (3 if cuda or not args.quick else 2)
    precisions = [Precision(v.strip()) for v in (args.precision or ("bf16,fp32" if cuda else "fp32")).split(",")]
    parts = [v.strip() for v in args.only.split(",") if v.strip()]
    payload: dict[str, Any] = {"benchmark": "train", "command": command_line(), "environment": environment(device),
                               "settings": {"precisions": [p.value for p in precisions], "repeats": repeats, "quick": args.quick},
                               "rows": [], "times": {}, "tables": []}
    for arch in ("resnet18", "smallcnn"):
        if arch not in parts:
            continue
        quick_batches, quick_size = (2, 16) if arch == "resnet18" else (1, 128)
        batch_size = args.batch_size or (quick_size if args.quick and not cuda else 128)
        n_batches = args.batches or (100 if cuda else (quick_batches if args.quick else 4))
        s = SETTINGS[arch]
        rows, times, table = model_part(s, n_batches, batch_size, precisions, repeats, device)
        payload["settings"][arch] = {**s.__dict__, "dataset": s.dataset.value, "beta": BETA, "batch_size": batch_size,
                                     "batches": n_batches}
        payload["rows"] += rows
        payload["times"].update(times)
        payload["tables"].append(table)
    if "sweep" in parts:
        with tempfile.TemporaryDirectory() as root:
            rows, times, check, table = sweep_part(DatasetName(args.sweep_dataset), args.data_dir, args.sweep_epochs,
                                                   repeats, device, Path(root))
        payload["settings"]["sweep"] = {"dataset": args.sweep_dataset, "alphas": SWEEP_ALPHAS, "epochs": args.sweep_epochs}
        payload["rows"] += rows
        payload["times"].update(times)
        payload["sweep_check"] = check
        payload["tables"].append(table)
    if "stack" in parts:
        batch_size = args.batch_size or 128
        n_batches = args.batches or (100 if cuda else (1 if args.quick else 4))
        rows, times, table = stack_part(n_batches, batch_size, repeats, device, args.stack_steps)
        payload["settings"]["stack"] = {"runs": [f"{d.value} a{a:g}" for d, a in TABLE1_RUNS], "batch_size": batch_size,
                                        "batches": n_batches, "steps": args.stack_steps or 40, "precision": "fp32"}
        payload["rows"] += rows
        payload["times"].update(times)
        payload["tables"].append(table)
    write_result(args, "train", payload)
    return payload


if __name__ == "__main__":
    main()
