"""`wmrbench audit`: the checks' logic on made-up records, the command on real digits
checkpoints (files, resume, leaderboard column), and on real MNIST: a deliberately masked model
fails the checks that catch masking, the public TRADES SmallCNN passes them all."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import MNIST_CHECKPOINT, MNIST_DIR, assert_one_line_error, invoke, require_mnist
from wmrbench.audit import checks as c
from wmrbench.audit.config import Tolerances

TOL = Tolerances()


def frame(correct, margin=None, clean=None):
    correct = np.asarray(correct, dtype=int)
    margin = np.where(correct == 1, 0.5, -0.5) if margin is None else np.asarray(margin, dtype=float)
    clean = np.ones_like(correct) if clean is None else np.asarray(clean, dtype=int)
    return pd.DataFrame({"index": np.arange(len(correct)), "label": 0, "clean_correct": clean,
                         "clean_margin": np.where(clean == 1, 0.9, -0.9), "pgd_correct": correct, "pgd_margin": margin})


def test_mcnemar_exact():
    assert c.mcnemar_p(0, 0) == 1.0
    assert c.mcnemar_p(10, 0) == pytest.approx(2 / 2**10)
    assert c.mcnemar_p(3, 3) == 1.0
    assert c.mcnemar_p(5, 1) == c.mcnemar_p(1, 5) == pytest.approx(2 * 7 / 64)


def test_paired_comparisons_pass_warn_fail():
    n = 500
    base = np.ones(n, dtype=int)
    base[:50] = 0
    frames = {"pgd": frame(base)}
    for name, extra in (("same", 0), ("two", 2), ("three", 3), ("many", 15)):
        other = base.copy()
        other[50:50 + extra] = 0  # `extra` more examples broken by the other attack
        frames[name] = frame(other)
    status = {name: c.versus(4, "x", frames, ["pgd"], name, TOL, "s")[0].status for name in ("same", "two", "three", "many")}
    # 0 and 0.4 points: pass; 0.6: warn; 3 points with p < 0.05: fail
    assert status == {"same": c.PASS, "two": c.PASS, "three": c.WARN, "many": c.FAIL}
    capped = c.versus(3, "x", frames, ["pgd"], "many", TOL, "s", cap=c.WARN)[0]
    assert capped.status == c.WARN


def test_eps_sweep_and_budget_checks():
    n = 200
    ok = {0.3: "a", 0.5: "b", 1.0: "c"}
    frames = {"a": frame([1] * 180 + [0] * 20), "b": frame([1] * 4 + [0] * 196), "c": frame([0] * n)}
    assert c.eps_sweep(frames, ok, (1.0, 2.0), TOL).status == c.PASS
    frames["c"] = frame([1] * 150 + [0] * 50)  # 75% robust at eps 1: the attack cannot be working
    check = c.eps_sweep(frames, ok, (1.0, 2.0), TOL)
    assert check.status == c.FAIL and "75.0 at eps 1" in check.detail
    # A longer attack that does much worse: fail; the same numbers: pass.
    frames = {"s10": frame([1] * 100 + [0] * 100), "s40": frame([1] * 100 + [0] * 100)}
    assert c.budget(frames, {(10, 1): "s10", (40, 1): "s40"}, TOL)[0].status == c.PASS
    frames["s40"] = frame([1] * 130 + [0] * 70)
    check, pairs = c.budget(frames, {(10, 1): "s10", (40, 1): "s40"}, TOL)
    assert check.status == c.FAIL and pairs[0].weaker == "s40" and pairs[0].d == pytest.approx(15.0)


def test_a_wc_takes_the_attackers_best_point():
    # Example 0: correct everywhere (highest margin kept); 1: broken by b only; 2: broken by both.
    a = frame([1, 1, 0], margin=[0.2, 0.3, -0.1])
    b = frame([1, 0, 0], margin=[0.4, -0.2, -0.6])
    wc = c.a_wc({"a": a, "b": b}, ["a", "b"], (1.0,))
    assert wc["A_rob"] == pytest.approx(100 / 3)
    s = np.exp(-np.array([0.9, -0.2, -0.6]))  # the clean point's 0.9 is example 0's highest margin
    assert wc["A_wc@1"] == pytest.approx(100 * s[0] / s.sum())


def audit_digits(checkpoint, reference, results, *extra):
    return invoke("audit", "--checkpoint", checkpoint, "--reference", reference, "--n-examples", "40", "--quick",
                  "--results-dir", results, "--quiet", *extra)


# In the fast tier: the one test of the audit's stages, report, transfer and Square (5 s measured
# on a loaded 2-core CPU).
def test_audit_command_writes_and_resumes(digits_runs, tmp_path, monkeypatch):
    a0, a2 = digits_runs["trades-a0"], digits_runs["trades-a2"]
    results = tmp_path / "results"
    out = audit_digits(a2, a0, results)
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    verdicts = [line.split()[1] for line in lines[:6]]
    assert [line.split(".")[0] for line in lines[:6]] == ["1", "2", "3", "4", "5", "6"]
    assert set(verdicts) <= {"pass", "warn", "fail"}
    folder = results / "trades-a2"
    doc = json.loads((folder / "audit.json").read_text())
    assert [ch["status"] for ch in doc["checks"]] == verdicts and doc["status"] == c.worst(verdicts)
    assert doc["config"]["base"]["n_examples"] == 40 and doc["config"]["steps_grid"] == [10, 20, 40]
    assert doc["config"]["reference"].startswith("--checkpoint")
    assert {"pgd-s20-r1", "pgd-lsa", "pgd-cw", "square", "transfer"} <= set(doc["stages"])
    assert (folder / "audit.md").read_text().startswith("# Audit of trades-a2")
    assert (folder / "audit-eps.png").read_bytes()[:4] == b"\x89PNG"
    # Base stage = evaluate's attack on the same examples: the same A_rob and A_tr.
    ev = invoke("evaluate", "--checkpoint", a2, "--n-examples", "40", "--alpha-test", "1,2", "--results-dir",
                tmp_path / "ev", "--quiet")
    assert ev.exit_code == 0, ev.output
    summary = json.loads((tmp_path / "ev" / "trades-a2" / "summary.json").read_text())
    assert doc["stages"]["pgd-s20-r1"]["A_rob"] == pytest.approx(summary["metrics"]["A_rob"], abs=1e-9)
    assert doc["stages"]["pgd-s20-r1"]["A_tr@2"] == pytest.approx(summary["metrics"]["A_tr"]["2"], abs=1e-9)

    # Again: every stage is read back, nothing is attacked, the verdicts are the same.
    import wmrbench.audit.stages as stages
    import wmrbench.audit.transfer as transfer
    from wmrbench.evaluation.pipeline import collect

    def refuse(*args, **kwargs):
        raise AssertionError("attacked again")

    monkeypatch.setattr(stages, "collect", refuse)
    monkeypatch.setattr(transfer, "collect", refuse)
    again = audit_digits(a2, a0, results)
    assert again.exit_code == 0, again.output
    assert again.stdout.splitlines()[:7] == lines[:7]
    # A killed audit: the stage it was in has no marker; only that stage runs again.
    (folder / "audit" / "pgd-cw.json").unlink()
    ran = []

    def counting(model, data, cfg, scorer, *args, **kwargs):
        ran.append(scorer.stage.name)
        return collect(model, data, cfg, scorer, *args, **kwargs)

    monkeypatch.setattr(stages, "collect", counting)
    resumed = audit_digits(a2, a0, results)
    assert resumed.exit_code == 0 and ran == ["pgd-cw"]
    assert resumed.stdout.splitlines()[:7] == lines[:7]


def test_audit_bad_input_is_one_line(digits_runs, tmp_path):
    assert_one_line_error(invoke("audit", "--results-dir", tmp_path), "say which model")
    out = audit_digits(digits_runs["trades-a2"], tmp_path / "missing.pt", tmp_path / "r")
    assert_one_line_error(out, "missing.pt")
    assert not (tmp_path / "r" / "trades-a2" / "audit.json").exists()
    out = invoke("audit", "--checkpoint", digits_runs["trades-a2"], "--run", "../x", "--results-dir", tmp_path / "q")
    assert_one_line_error(out, "is not a run name")
    assert not (tmp_path / "q").exists() and not (tmp_path / "x").exists()


def test_audit_refuses_zero_examples_as_evaluate_does(tmp_path):
    """0 is a value given, not "not given": the audit must not fall back to its 500 images."""
    require_mnist()
    common = ("--checkpoint", MNIST_CHECKPOINT, "--arch", "smallcnn", "--dataset", "mnist", "--data-dir", MNIST_DIR,
              "--n-examples", "0", "--device", "cpu", "--quiet")
    said = assert_one_line_error(invoke("evaluate", *common, "--results-dir", tmp_path / "e"), "--n-examples")
    assert assert_one_line_error(invoke("audit", *common, "--results-dir", tmp_path / "a"), "--n-examples") == said
    assert not (tmp_path / "a").exists() and not (tmp_path / "e").exists()


def test_audit_options_keep_what_was_given():
    from wmrbench.audit.run import audit_options

    assert audit_options({"n_examples": 0, "alpha_test": ()}) == {"n_examples": 0, "alpha_test": ()}
    assert audit_options({"n_examples": None, "alpha_test": None})["n_examples"] == 500


def _audit_on(results: Path, run: str, status: str, **changed: str) -> None:
    """An audit.json made on the weights and examples of RUN's result (or, ``changed``, others)."""
    summary = json.loads((results / run / "summary.json").read_text())
    made_on = {"model_sha256": summary["model_sha256"], "data_sha256": summary["data_sha256"], **changed}
    (results / run / "audit.json").write_text(json.dumps({"status": status, **made_on}))


def _audit_column(results: Path) -> dict[str, str]:
    rows = [[x.strip() for x in line.split("|")[1:-1]] for line in (results / "leaderboard-uniform.md").read_text().splitlines()]
    assert rows[0][-1] == "audit"
    return {r[1]: r[-1] for r in rows[2:]}


def test_leaderboard_shows_the_audit(digits_results, tmp_path):
    results = Path(shutil.copytree(digits_results, tmp_path / "results"))
    _audit_on(results, "trades-a2", "fail")
    assert invoke("leaderboard", results).exit_code == 0
    assert _audit_column(results) == {"trades-a0": "not run", "trades-a2": "fail"}


@pytest.mark.parametrize("changed", [{"model_sha256": "0" * 64}, {"data_sha256": "0" * 64}, {"model_sha256": None}])
def test_an_audit_of_other_weights_or_examples_is_stale(changed, digits_results, tmp_path):
    """evaluate --overwrite with another model, or on another number of examples, keeps the old
    audit.json: its verdict must not be shown beside the new result (nor one that records neither)."""
    results = Path(shutil.copytree(digits_results, tmp_path / "results"))
    _audit_on(results, "trades-a2", "pass", **changed)
    _audit_on(results, "trades-a0", "warn")
    out = invoke("leaderboard", results)
    assert out.exit_code == 0, out.output
    assert _audit_column(results) == {"trades-a0": "warn", "trades-a2": "stale"}
    assert "Warning: audit stale for trades-a2: made on other weights or other examples" in out.stderr


@pytest.mark.slow  # 7 s measured on the loaded 2-core machine: a quick audit and two evaluations of 20 digits
def test_a_real_audit_is_shown_only_beside_the_result_it_was_made_on(digits_runs, tmp_path):
    a0, a2 = digits_runs["trades-a0"], digits_runs["trades-a2"]
    results = tmp_path / "results"
    common = ("--n-examples", "20", "--steps", "2", "--results-dir", results, "--quiet")
    assert invoke("evaluate", "--checkpoint", a2, "--run", "m", *common).exit_code == 0
    out = invoke("audit", "--checkpoint", a2, "--run", "m", "--quick", *common)
    assert out.exit_code == 0, out.output
    verdict = json.loads((results / "m" / "audit.json").read_text())["status"]
    assert invoke("leaderboard", results).exit_code == 0
    assert _audit_column(results) == {"m": verdict}
    # The same run name, another model: the audit no longer belongs to the row.
    assert invoke("evaluate", "--checkpoint", a0, "--run", "m", *common, "--overwrite").exit_code == 0
    assert invoke("leaderboard", results).exit_code == 0
    assert _audit_column(results) == {"m": "stale"}


MASKED = '''
from wmrbench.models import create_model


def build():
    """The TRADES SmallCNN with its logits x 1e4: the same decisions, a saturated softmax."""
    net = create_model("smallcnn", 10, 1)

    class Masked(type(net)):
        def forward(self, x):
            return super().forward(x) * 1e4

    net.__class__ = Masked
    return net
'''


def mnist_audit(root: Path, *model_options):
    """A --quick audit on the first 60 MNIST test images, with a PGD-20 base (step 0.02: the same
    distance as the preset's PGD-40 at 0.01, half the cost)."""
    require_mnist()
    (root / "masked_fixture.py").write_text(MASKED)
    return invoke("audit", *[str(o).replace("FIXTURE", str(root / "masked_fixture.py")) for o in model_options],
                  "--dataset", "mnist", "--data-dir", MNIST_DIR, "--n-examples", "60", "--steps", "20",
                  "--step-size", "0.02", "--quick", "--quiet", "--results-dir", root / "results")


def verdicts(out):
    return {int(line.split(".")[0]): "not run" if " not run " in line else line.split()[1]
            for line in out.stdout.splitlines()[:6]}


@pytest.mark.slow
def test_masked_model_fails_the_checks_that_catch_it(tmp_path):
    out = mnist_audit(tmp_path, "--model", "FIXTURE:build", "--checkpoint", MNIST_CHECKPOINT,
                      "--reference", MNIST_CHECKPOINT, "--reference-arch", "smallcnn")
    assert out.exit_code == 0, out.output
    v = verdicts(out)
    # Measured (60 images): PGD-CE cannot move it, so A_rob stays ~clean even at eps 0.5 (check 1
    # fails); Square, pgd-lsa, pgd-cw and the real model's points each break what PGD-CE does not
    # (checks 3-5 warn: on 60 images, 1-2 examples, not yet significant).
    assert v[1] == c.FAIL and all(v[k] in (c.WARN, c.FAIL) for k in (3, 4, 5)), out.stdout
    doc = json.loads((tmp_path / "results" / "trades_mnist_smallcnn" / "audit.json").read_text())  # the checkpoint's name
    assert doc["status"] == c.FAIL
    assert doc["stages"]["pgd-s20-r1"]["A_rob"] > doc["stages"]["pgd-cw"]["A_rob"]


@pytest.mark.slow
def test_trades_checkpoint_passes_every_check(tmp_path):
    out = mnist_audit(tmp_path, "--checkpoint", MNIST_CHECKPOINT, "--arch", "smallcnn")
    assert out.exit_code == 0, out.output
    v = verdicts(out)
    # No fail; on 60 images one example more broken by Square than by PGD is a warning (check 3).
    assert all(v[k] == c.PASS for k in (1, 2, 4)) and v[5] == c.NOT_RUN, out.stdout
    assert c.FAIL not in v.values(), out.stdout


def test_a_difference_of_one_image_says_so_instead_of_a_diagnosis():
    """One image of 50 answered differently is 2 points, a warn: it must not read as masking."""
    base = frame([1] * 50)
    lsa = frame([1] * 49 + [0])
    check, pairs = c.versus(4, "pgd-lsa not stronger", {"pgd": base, "lsa": lsa}, ["pgd"], "lsa", TOL,
                            "PGD-CE's numbers overstate robustness")
    assert check.status == c.WARN and pairs[0].one_image
    assert "rests on one image" in check.suggests and "overstate" not in check.suggests
    two = frame([1] * 48 + [0, 0])
    check, _ = c.versus(4, "pgd-lsa not stronger", {"pgd": base, "lsa": two}, ["pgd"], "lsa", TOL,
                        "PGD-CE's numbers overstate robustness")
    assert "overstate" in check.suggests


def test_an_audit_on_too_few_images_gives_no_verdict():
    passed = c.Check(1, "eps sweep to ~0", c.PASS, "A_rob 0.0 at eps 1", "masking")
    skipped = c.Check(5, "transfer", c.NOT_RUN, "no reference", "x")
    few = c.too_few([passed, skipped], 1, TOL)
    assert few[0].status == c.WARN and "rests on 1 image: too few for a verdict" in few[0].line()
    assert few[1] == skipped and c.worst([ch.status for ch in few]) == c.WARN
    assert c.too_few([passed], TOL.min_examples, TOL) == [passed]


@pytest.mark.slow  # 18 s measured on the loaded 2-core machine: every stage of a quick audit on one image
def test_an_audit_on_one_image_does_not_pass(tmp_path):
    require_mnist()
    out = invoke("audit", "--checkpoint", MNIST_CHECKPOINT, "--arch", "smallcnn", "--dataset", "mnist",
                 "--data-dir", MNIST_DIR, "--n-examples", "1", "--quick", "--device", "cpu", "--results-dir", tmp_path)
    assert out.exit_code == 0, out.output
    assert "audit: warn" in out.stdout and "rests on 1 image: too few for a verdict" in out.stdout
    assert "overstate" not in out.stdout
