"""The AutoAttack adapter (wmrbench.attacks.autoattack, pyautoattack underneath) on the real robust
MNIST model and real MNIST test images."""

from __future__ import annotations

import pytest
import torch

from wmrbench import attacks
from wmrbench.core.attack_config import AttackConfig, Norm
from wmrbench.core.errors import WmrbenchError

pytest.importorskip("pyautoattack")


def images(mnist_test, ids):
    index = torch.tensor(ids)
    return index, mnist_test.images(index), mnist_test.y[index]


def robust_count(result, y) -> int:
    return int((result.logits.argmax(1) == y).sum())


def check_points(result, x, y, eps, model, norm=Norm.LINF):
    delta = (result.x_adv - x).flatten(1)
    size = delta.abs().amax(1) if norm is Norm.LINF else delta.norm(dim=1)
    assert size.max() <= eps + 1e-6
    assert result.x_adv.min() >= 0 and result.x_adv.max() <= 1
    assert torch.equal(result.logits, attacks.predict(model, result.x_adv))
    assert torch.equal(result.margin, attacks.margin(result.logits, y))
    assert torch.equal(result.restart, torch.zeros(len(y), dtype=torch.int64))


@pytest.mark.slow  # AutoAttack's four attacks on one robust image: ~40 s on a loaded 2-core CPU
def test_standard_autoattack_is_at_most_pgd40(mnist_model, mnist_test):
    """Six test images at eps 0.3: PGD-40 breaks 8 and 62; APGD also 18, 20 and 33; image 0 resists
    both, so AutoAttack runs all four of its attacks (APGD-CE, APGD-T, FAB-T, Square) on it."""
    index, x, y = images(mnist_test, [0, 8, 18, 20, 33, 62])
    cfg = AttackConfig(eps=0.3, step_size=0.01, steps=40)
    pgd40 = attacks.pgd(mnist_model, x, y, cfg, index=index)
    aa = attacks.autoattack(mnist_model, x, y, cfg)
    assert robust_count(aa, y) <= robust_count(pgd40, y)
    assert robust_count(pgd40, y) == 4 and robust_count(aa, y) == 1
    check_points(aa, x, y, 0.3, mnist_model)
    # The image it could not break comes back as itself.
    assert torch.equal(aa.x_adv[0], x[0])


def test_autoattack_is_quiet_deterministic_and_leaves_the_rng_alone(mnist_model, mnist_test, capsys):
    """eps 0.4 on eight images that APGD-CE breaks (so its later attacks have nothing left to do);
    PGD-40 leaves image 3 standing."""
    index, x, y = images(mnist_test, list(range(8)))
    cfg = AttackConfig(eps=0.4, step_size=0.01, steps=40)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = attacks.autoattack(mnist_model, x, y, cfg, seed=5)
    assert torch.equal(torch.get_rng_state(), state)
    again = attacks.get_attack("autoattack").run(mnist_model, x, y, cfg, seed=5, index=index)
    assert torch.equal(first.x_adv, again.x_adv)
    assert capsys.readouterr().out == ""
    pgd40 = attacks.pgd(mnist_model, x, y, cfg, index=index)
    assert robust_count(first, y) == 0 < robust_count(pgd40, y)
    check_points(first, x, y, 0.4, mnist_model)


def test_autoattack_l2(mnist_model, mnist_test):
    index, x, y = images(mnist_test, [8, 62])
    cfg = AttackConfig(eps=3.0, step_size=0.1, steps=10, norm=Norm.L2)
    result = attacks.autoattack(mnist_model, x, y, cfg)
    check_points(result, x, y, 3.0, mnist_model, Norm.L2)
    assert robust_count(result, y) == 0


def test_autoattack_refuses_weights_and_unknown_versions(mnist_model, mnist_test):
    _, x, y = images(mnist_test, [0])
    cfg = AttackConfig(eps=0.3, step_size=0.01, steps=1)
    for alpha in (1.0, torch.tensor([2.0])):
        with pytest.raises(WmrbenchError, match="autoattack is unweighted") as caught:
            attacks.autoattack(mnist_model, x, y, cfg, alpha=alpha)
        assert "\n" not in str(caught.value)
    with pytest.raises(WmrbenchError, match="unknown AutoAttack version 'fast'; choose one of: standard, plus, rand"):
        attacks.autoattack(mnist_model, x, y, cfg, version="fast")
    assert "autoattack" in attacks.list_attacks()
