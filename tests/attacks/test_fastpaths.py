"""The fast paths of wmrbench.attacks (bf16 autocast, torch.compile, CUDA graphs) and of evaluation
(padded batches) give what the plain eager path gives.

CPU tests run everywhere; tests that need CUDA skip with the reason printed. Float comparisons:
an attack takes the *sign* of the gradient, so a different but equally valid rounding (another
kernel, bf16) can flip a coordinate whose gradient is ~0 and move it by 2 * step_size from then
on. Paths that run the same kernels must agree exactly; the others are compared by how few
coordinates differ and by the accuracy they give.
"""

from __future__ import annotations

import copy
import dataclasses
import logging

import pytest
import torch

from wmrbench import attacks
from wmrbench.core.attack_config import AttackConfig, InnerLoss, Norm, Precision, RestartFrom, Start
from wmrbench.core.config import DatasetName, EvalConfig

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (CUDA graphs, GPU kernels)")

EPS, STEP, STEPS = 0.3, 0.01, 10
PGD10 = AttackConfig(eps=EPS, step_size=STEP, steps=STEPS)


def mnist_batch(mnist_test, n=64, offset=0):
    index = torch.arange(offset, offset + n)
    return index, mnist_test.images(index), mnist_test.y[index]


def robust_accuracy(result, y):
    return (result.logits.argmax(1) == y).float().mean().item()


def differing(a, b, tol=1e-6):
    """Fraction of coordinates that differ by more than tol."""
    return ((a - b).abs() > tol).float().mean().item()


# --- CPU: padded evaluation batches -------------------------------------------------------------


def eval_config(batch_size, device="cpu", precision=Precision.FP32):
    return EvalConfig(
        dataset=DatasetName.DIGITS, attack=AttackConfig(eps=0.1, step_size=0.02, steps=5),
        alpha_test=(0.0, 2.0), n_examples=None, batch_size=batch_size, seed=0, data_dir="",
        device=device, precision=precision, results_dir="", run="t",
    )


def test_padded_last_batch_changes_no_result(digits_model, digits_test):
    """50 examples in batches of 32 (last batch padded from 18 to 32) = one batch of 50."""
    from wmrbench.evaluation import evaluate_model

    data = digits_test.subset(50)
    padded = evaluate_model(digits_model, data, eval_config(32), show_progress=False)
    whole = evaluate_model(digits_model, data, eval_config(50), show_progress=False)
    assert len(padded) == 50 and padded["index"].tolist() == list(range(50))
    assert padded.equals(whole)


# --- CPU: float64 passes through (used by the benchmark's exactness check) ----------------------


def test_float64_model_is_attacked_in_float64(digits_model, digits_test):
    model = digits_model.double()
    index = torch.arange(32)
    x, y = digits_test.images(index).double(), digits_test.y[index]
    result = attacks.pgd(model, x, y, AttackConfig(eps=0.1, step_size=0.02, steps=5, start=Start.ZERO))
    assert result.logits.dtype == torch.float64 and result.x_adv.dtype == torch.float64
    x_adv = x.clone()  # the same attack written out: sum CE, signed step, projection
    for _ in range(5):
        x_adv.requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(model(x_adv), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = torch.min(torch.max(x_adv.detach() + 0.02 * grad.sign(), x - 0.1), x + 0.1).clamp(0, 1)
    assert torch.equal(result.x_adv, x_adv)


# --- CPU: bf16 autocast -------------------------------------------------------------------------


def test_bf16_autocast_attack_matches_fp32(mnist_model, mnist_test):
    index, x, y = mnist_batch(mnist_test, 128)
    common = dict(index=index, seed=0)
    fp32 = attacks.pgd(mnist_model, x, y, PGD10, **common)
    bf16 = attacks.pgd(mnist_model, x, y, PGD10, precision=Precision.BF16, **common)
    assert bf16.logits.dtype == torch.float32  # upcast before the loss and the margin
    assert (bf16.x_adv - x).abs().max() <= EPS + 1e-6 and 0 <= bf16.x_adv.min() and bf16.x_adv.max() <= 1
    # A weaker or stronger attack would move the accuracy; bf16 rounding moves it by a few examples.
    assert abs(robust_accuracy(bf16, y) - robust_accuracy(fp32, y)) <= 3 / 128
    assert (bf16.margin - fp32.margin).abs().mean() < 0.05


def test_bf16_alpha_zero_is_still_bit_identical_to_plain(mnist_model, mnist_test):
    index, x, y = mnist_batch(mnist_test, 32)
    attack = AttackConfig(eps=EPS, step_size=STEP, steps=5)
    common = dict(index=index, seed=2, precision="bf16")
    plain = attacks.pgd(mnist_model, x, y, attack, alpha=None, **common)
    weighted = attacks.pgd(mnist_model, x, y, attack, alpha=torch.zeros(len(y)), **common)
    assert torch.equal(plain.x_adv, weighted.x_adv) and torch.equal(plain.margin, weighted.margin)


# --- CPU: torch.compile -------------------------------------------------------------------------


@pytest.mark.slow  # 16 s measured on a loaded 2-core CPU (tests/README.md)
def test_compiled_attack_matches_eager(digits_model, digits_test):
    index = torch.arange(64)
    x, y = digits_test.images(index), digits_test.y[index]
    natural = attacks.predict(digits_model, x)
    alpha = torch.tensor([0.0, 2.0]).repeat_interleave(32)
    for loss in (InnerLoss.CE, InnerLoss.KL):
        common = dict(alpha=alpha, loss=loss, index=index, natural_logits=natural)
        attack = AttackConfig(eps=0.1, step_size=0.02, steps=5)
        eager = attacks.pgd(digits_model, x, y, attack, **common)
        compiled = attacks.pgd(digits_model, x, y, attack, compile_model=True, **common)
        assert differing(compiled.x_adv, eager.x_adv) < 0.01
        assert robust_accuracy(compiled, y) == robust_accuracy(eager, y)
        assert torch.allclose(compiled.margin, eager.margin, atol=0.05)
    assert digits_model.training is False and all(p.requires_grad for p in digits_model.parameters())


# --- CPU: the CUDA-graph cache's bookkeeping ---------------------------------------------------


def test_graph_cache_remembers_failures_and_drops_the_least_recent():
    import gc

    from wmrbench.attacks.stepper import GraphCache

    cache = GraphCache(per_model=2)
    model = torch.nn.Linear(2, 2)
    b, c = object(), object()  # stand-ins for captured graphs
    cache.put(model, "a", None)  # a failed capture
    assert cache.failed(model, "a") and cache.get(model, "a") is None
    cache.put(model, "b", b)
    assert cache.get(model, "b") is b and not cache.failed(model, "b")
    cache.put(model, "c", c)  # over per_model: the least recently used ("a") goes
    assert not cache.failed(model, "a") and cache.get(model, "c") is c
    del model
    gc.collect()
    assert len(cache._graphs) == 0  # keyed weakly: a deleted model frees its graphs


class EmulatedGraph:
    """Stands in for torch.cuda.CUDAGraph on the CPU: what ``torch.cuda.graph`` would record (one
    step on the static buffers, copied back into them) is kept as a closure and re-run by replay."""

    capturing: EmulatedGraph | None = None
    fail_for: torch.nn.Module | None = None  # capture raises for this model (a host sync, say)

    def __init__(self) -> None:
        self.recorded = []

    def replay(self) -> None:
        for op in self.recorded:
            op()


@pytest.fixture
def emulated_cuda_graphs(monkeypatch):
    """Runs GraphStepper on the CPU: streams and syncs are no-ops, capture records, replay re-runs."""
    import contextlib
    import importlib

    # The module, not the function of the same name that wmrbench.attacks re-exports.
    pgd_module = importlib.import_module("wmrbench.attacks.pgd")

    real_step = pgd_module._step

    def step(forward, x_adv, inputs):
        graph = EmulatedGraph.capturing
        if graph is None:
            return real_step(forward, x_adv, inputs)
        if EmulatedGraph.fail_for is not None:
            raise RuntimeError("operation not permitted when stream is capturing")
        graph.recorded.append(lambda: x_adv.copy_(real_step(forward, x_adv, inputs)))
        return x_adv  # a capture computes nothing

    @contextlib.contextmanager
    def capture(graph):
        EmulatedGraph.capturing = graph
        try:
            yield
        finally:
            EmulatedGraph.capturing = None

    class Stream:
        def __init__(self, *args):
            pass

        def wait_stream(self, other):
            pass

    monkeypatch.setattr(pgd_module, "_step", step)
    monkeypatch.setattr(pgd_module, "use_cuda_graph", lambda x, cuda_graph: bool(cuda_graph))
    monkeypatch.setattr(torch.cuda, "CUDAGraph", EmulatedGraph)
    monkeypatch.setattr(torch.cuda, "graph", capture)
    monkeypatch.setattr(torch.cuda, "Stream", Stream)
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: Stream())
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    yield
    EmulatedGraph.fail_for = None


@pytest.mark.slow  # 2 s measured on a loaded 2-core CPU (tests/README.md)
@pytest.mark.parametrize("norm", list(Norm))
def test_graph_stepper_replays_what_the_eager_loop_computes(emulated_cuda_graphs, mnist_model, mnist_test, norm):
    """Capture after warm-up, replay with new inputs loaded, too few steps, no steps: each equals
    the eager attack bit for bit (the same CPU kernels run either way), for either norm."""
    from wmrbench.attacks.stepper import GRAPH_CACHE

    model = copy.deepcopy(mnist_model)  # a fresh key in the process-wide graph cache
    eps, step = (EPS, STEP) if norm is Norm.LINF else (2.0, 0.3)
    attack = AttackConfig(eps=eps, step_size=step, steps=5, restarts=2, start=Start.NORMAL, norm=norm)
    for offset in (0, 0, 32):  # capture, replay, replay on another batch
        index, x, y = mnist_batch(mnist_test, 32, offset)
        common = dict(alpha=torch.linspace(0, 3, 32), loss="kl", natural_logits=attacks.predict(model, x), index=index)
        for a in (attack, dataclasses.replace(attack, steps=2), dataclasses.replace(attack, steps=0)):
            eager = attacks.pgd(model, x, y, a, cuda_graph=False, **common)
            graphed = attacks.pgd(model, x, y, a, cuda_graph=True, **common)
            assert torch.equal(graphed.x_adv, eager.x_adv) and torch.equal(graphed.margin, eager.margin)
    (entry,) = GRAPH_CACHE._graphs[model].values()  # steps=2 and 0 never captured
    assert len(entry.graph.recorded) == 1


def test_failed_capture_is_logged_once_then_runs_eagerly_emulated(emulated_cuda_graphs, mnist_model, mnist_test, caplog):
    model = copy.deepcopy(mnist_model)
    EmulatedGraph.fail_for = model
    index, x, y = mnist_batch(mnist_test, 32)
    eager = attacks.pgd(model, x, y, PGD10, cuda_graph=False, index=index, alpha=2.0)
    with caplog.at_level(logging.WARNING, logger="wmrbench.attacks"):
        for _ in range(3):
            graphed = attacks.pgd(model, x, y, PGD10, cuda_graph=True, index=index, alpha=2.0)
            assert torch.equal(graphed.x_adv, eager.x_adv)
    failures = [r for r in caplog.records if "CUDA graph capture failed" in r.getMessage()]
    assert len(failures) == 1 and "SmallCNN" in failures[0].getMessage(), caplog.text


# --- CUDA: graphs, bf16 + channels_last, evaluation on the GPU ----------------------------------


@pytest.fixture
def cuda_mnist(mnist_model, mnist_test):
    from wmrbench.core.runtime import prepare_model

    return prepare_model(mnist_model, torch.device("cuda")), mnist_test


@needs_cuda
@pytest.mark.parametrize("precision", list(Precision))
@pytest.mark.parametrize("loss", list(InnerLoss))
def test_cuda_graph_matches_eager(cuda_mnist, precision, loss):
    model, data = cuda_mnist
    index, x, y = (t.cuda() for t in mnist_batch(data, 256))
    natural = attacks.predict(model, x, precision)
    alpha = torch.tensor([0.0, 1.0, 2.0, 4.0], device="cuda").repeat_interleave(64)
    attack = AttackConfig(eps=EPS, step_size=STEP, steps=STEPS, start=Start.NORMAL)
    common = dict(alpha=alpha, loss=loss, index=index, natural_logits=natural, precision=precision)
    eager = attacks.pgd(model, x, y, attack, cuda_graph=False, **common)
    first = attacks.pgd(model, x, y, attack, cuda_graph=True, **common)  # warm-up steps + capture
    again = attacks.pgd(model, x, y, attack, cuda_graph=True, **common)  # replays only
    for graphed in (first, again):
        print(f"graph vs eager ({precision.value}, {loss.value}): differing coords {differing(graphed.x_adv, eager.x_adv):.2e}")
        assert differing(graphed.x_adv, eager.x_adv) < 1e-3
        assert abs(robust_accuracy(graphed, y) - robust_accuracy(eager, y)) <= 1 / 256
    # The replayed graph reads new inputs: another batch agrees with its eager attack too.
    index2, x2, y2 = (t.cuda() for t in mnist_batch(data, 256, offset=256))
    common.update(index=index2, natural_logits=attacks.predict(model, x2, precision))
    other_eager = attacks.pgd(model, x2, y2, attack, cuda_graph=False, **common)
    other_graph = attacks.pgd(model, x2, y2, attack, cuda_graph=True, **common)
    assert differing(other_graph.x_adv, other_eager.x_adv) < 1e-3


@needs_cuda
def test_cuda_graph_reads_weights_in_place(cuda_mnist):
    """An optimizer updates weights in place: a cached graph must see the new values."""
    model, data = cuda_mnist
    index, x, y = (t.cuda() for t in mnist_batch(data, 128))
    attacks.pgd(model, x, y, PGD10, cuda_graph=True, index=index)  # capture with the old weights
    with torch.no_grad():
        model.classifier.fc3.weight.mul_(-1.0)  # in place: same storage, new values
    eager = attacks.pgd(model, x, y, PGD10, cuda_graph=False, index=index)
    graphed = attacks.pgd(model, x, y, PGD10, cuda_graph=True, index=index)
    assert differing(graphed.x_adv, eager.x_adv) < 1e-3
    assert torch.allclose(graphed.margin, eager.margin, atol=1e-3)


class HostSync(torch.nn.Module):
    """Reads a value back to the host in its forward, which a CUDA graph cannot capture."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum().item() < 0:  # never true for images: only the sync matters
            x = -x
        return self.inner(x)


@needs_cuda
def test_failed_capture_is_logged_once_then_runs_eagerly(cuda_mnist, caplog):
    model, data = cuda_mnist
    synced = HostSync(model)
    index, x, y = (t.cuda() for t in mnist_batch(data, 64))
    eager = attacks.pgd(synced, x, y, PGD10, cuda_graph=False, index=index)
    with caplog.at_level(logging.WARNING, logger="wmrbench.attacks"):
        first = attacks.pgd(synced, x, y, PGD10, cuda_graph=True, index=index)  # capture fails
        again = attacks.pgd(synced, x, y, PGD10, cuda_graph=True, index=index)  # eager, no new try
    failures = [r for r in caplog.records if "CUDA graph capture failed" in r.getMessage()]
    assert len(failures) == 1, caplog.text
    for result in (first, again):
        assert differing(result.x_adv, eager.x_adv) < 1e-3
        assert abs(robust_accuracy(result, y) - robust_accuracy(eager, y)) <= 1 / 64


@needs_cuda
def test_cuda_graph_restarts_and_alpha_zero(cuda_mnist):
    model, data = cuda_mnist
    index, x, y = (t.cuda() for t in mnist_batch(data, 128))
    three = AttackConfig(eps=EPS, step_size=0.05, steps=5, restarts=3)
    common = dict(index=index, cuda_graph=True)
    plain = attacks.pgd(model, x, y, three, alpha=None, **common)
    zero = attacks.pgd(model, x, y, three, alpha=torch.zeros(128, device="cuda"), **common)
    one = attacks.pgd(model, x, y, dataclasses.replace(three, restarts=1), alpha=None, **common)
    # Restart 0 is a candidate: what it misclassifies stays misclassified, no less confidently.
    one_wrong = one.logits.argmax(1) != y
    assert torch.all(plain.logits.argmax(1)[one_wrong] != y[one_wrong])
    assert torch.all(plain.margin[one_wrong] <= one.margin[one_wrong] + 1e-6)
    assert differing(plain.x_adv, zero.x_adv) < 1e-3
    assert (plain.restart == zero.restart).float().mean() > 0.99


@needs_cuda
@pytest.mark.parametrize("restart_from", list(RestartFrom))
def test_cuda_graph_l2_and_chained_restarts_match_eager(cuda_mnist, restart_from):
    """The L2 step (per-example norms, projection) is captured like the L-infinity one."""
    model, data = cuda_mnist
    index, x, y = (t.cuda() for t in mnist_batch(data, 256))
    alpha = torch.tensor([0.0, 2.0], device="cuda").repeat_interleave(128)
    attack = AttackConfig(eps=2.0, step_size=0.25, steps=STEPS, restarts=2, norm=Norm.L2, restart_from=restart_from)
    common = dict(alpha=alpha, index=index, precision=Precision.FP32)
    eager = attacks.pgd(model, x, y, attack, cuda_graph=False, **common)
    for _ in range(2):  # capture, then replay
        graphed = attacks.pgd(model, x, y, attack, cuda_graph=True, **common)
        assert (graphed.x_adv - x).flatten(1).norm(dim=1).max() <= 2.0 + 1e-5
        print(f"L2 graph vs eager ({restart_from.value}): differing coords {differing(graphed.x_adv, eager.x_adv, 1e-4):.2e}")
        assert differing(graphed.x_adv, eager.x_adv, tol=1e-4) < 1e-3
        assert abs(robust_accuracy(graphed, y) - robust_accuracy(eager, y)) <= 1 / 256


@needs_cuda
def test_compiled_and_graphed_attack_matches_eager_on_cuda(cuda_mnist):
    model, data = cuda_mnist
    index, x, y = (t.cuda() for t in mnist_batch(data, 256))
    common = dict(alpha=2.0, index=index, precision=Precision.BF16)
    eager = attacks.pgd(model, x, y, PGD10, cuda_graph=False, **common)
    fast = attacks.pgd(model, x, y, PGD10, cuda_graph=True, compile_model=True, **common)
    print(f"compile+graph vs eager (bf16): differing coords {differing(fast.x_adv, eager.x_adv):.2e}")
    assert differing(fast.x_adv, eager.x_adv) < 0.02
    assert abs(robust_accuracy(fast, y) - robust_accuracy(eager, y)) <= 3 / 256


@needs_cuda
def test_gpu_evaluation_matches_cpu(mnist_model, mnist_test):
    """The whole evaluation on CUDA (graphs, padded batches) against the CPU reference path."""
    from wmrbench.evaluation import evaluate_model
    from wmrbench.results.metrics import compute_metrics

    cfg = dict(dataset=DatasetName.MNIST, attack=AttackConfig(eps=EPS, step_size=STEP, steps=20),
               alpha_test=(0.0, 2.0), n_examples=300, batch_size=128, seed=0, data_dir="",
               results_dir="", run="t")
    data = mnist_test.subset(300)
    cpu = compute_metrics(evaluate_model(mnist_model.cpu(), data, EvalConfig(device="cpu", precision=Precision.FP32, **cfg), show_progress=False))
    for precision in (Precision.FP32, Precision.BF16):
        gpu = compute_metrics(evaluate_model(mnist_model, data, EvalConfig(device="cuda", precision=precision, **cfg), show_progress=False))
        print(f"A_rob cpu fp32 {cpu['A_rob']} cuda {precision.value} {gpu['A_rob']}")
        assert gpu["A_sa"]["0"] == gpu["A_rob"]
        # A_tr(0) comes from the stacked batch (another shape, so maybe other GPU kernels): exact
        # on the CPU path, equal up to a rare rounding flip here.
        assert abs(gpu["A_tr"]["0"] - gpu["A_rob"]) <= 0.34
        assert abs(gpu["A_rob"] - cpu["A_rob"]) <= 1.0  # percentage points
        assert abs(gpu["A_nat"] - cpu["A_nat"]) <= 0.34
