"""``evaluate --seeds 0,1,2``: the attack repeated with other keyed starts on the
same examples, its spread per metric in the summary and on the terminal, each seed's records kept.
Through the CLI on the real MNIST checkpoint, with few images and steps."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.conftest import MNIST_CHECKPOINT, MNIST_DIR, assert_one_line_error, invoke, require_mnist
from wmrbench.core.errors import WmrbenchError
from wmrbench.results.metrics import compute_metrics
from wmrbench.results.records import metric_values, read_summary, seed_records_name


def _evaluate(tmp_path, run, *extra):
    # 5 steps of 0.05 on 64 images: strong enough that the starts change some examples' fate.
    return invoke("evaluate", "--checkpoint", MNIST_CHECKPOINT, "--arch", "smallcnn", "--dataset", "mnist",
                  "--data-dir", MNIST_DIR, "--n-examples", 64, "--steps", 5, "--step-size", 0.05, "--alpha-test", "1,2",
                  "--device", "cpu", "--results-dir", tmp_path, "--run", run, "--quiet", *extra)


@pytest.mark.slow  # four attacks of 64 images: ~40 s on a loaded 2-core CPU
def test_two_seeds_give_a_spread_one_seed_none_and_the_first_seed_is_the_plain_result(tmp_path):
    require_mnist()
    out = _evaluate(tmp_path, "two", "--seeds", "0,1")
    assert out.exit_code == 0, out.output
    folder = tmp_path / "two"
    summary = read_summary(folder / "summary.json")
    spread = summary.seed_spread
    assert summary.config.seed == 0 and summary.config.seeds == (0, 1) and spread.seeds == (0, 1)
    # Each seed's records are kept, and the summary's metrics per seed are computed from them.
    seed1 = pd.read_csv(folder / seed_records_name(1))
    assert spread.metrics["1"] == compute_metrics(seed1) and spread.metrics["0"] == summary.metrics
    # The spread is min, max, mean, std (ddof 1) of the seeds' values, and the starts matter here.
    values = [metric_values(spread.metrics[s]) for s in ("0", "1")]
    for name, stats in spread.spread.items():
        a, b = values[0][name], values[1][name]
        assert stats["min"] == min(a, b) and stats["max"] == max(a, b)
        assert stats["mean"] == pytest.approx((a + b) / 2) and stats["std"] == pytest.approx(abs(a - b) / 2 ** 0.5)
    assert spread.spread["A_sa@2"]["max"] > spread.spread["A_sa@2"]["min"]
    # The terminal shows the spread beside the result.
    assert "seeds 0, 1" in out.stdout and "A_sa@2" in out.stdout and "std" in out.stdout

    # The first seed's records are a plain --seed 0 run's, byte for byte.
    plain = _evaluate(tmp_path, "plain", "--seed", "0")
    assert plain.exit_code == 0, plain.output
    assert (folder / "records.csv").read_bytes() == (tmp_path / "plain" / "records.csv").read_bytes()
    plain_summary = json.loads((tmp_path / "plain" / "summary.json").read_text())
    assert "seed_spread" not in plain_summary and "seeds 0" not in plain.stdout
    assert read_summary(tmp_path / "plain" / "summary.json").seed_spread is None

    # One seed is no spread (and not a repeat of the attack).
    one = _evaluate(tmp_path, "one", "--seeds", "0")
    assert one.exit_code == 0, one.output
    assert read_summary(tmp_path / "one" / "summary.json").seed_spread is None
    assert not (tmp_path / "one" / seed_records_name(0)).exists() and "std" not in one.stdout
    assert (tmp_path / "one" / "records.csv").read_bytes() == (tmp_path / "plain" / "records.csv").read_bytes()

    # A seed's records edited after the fact no longer pass for the summary's.
    with open(folder / seed_records_name(1), "a") as handle:
        handle.write("\n")
    with pytest.raises(WmrbenchError, match="records-seed1.csv"):
        read_summary(folder / "summary.json")


@pytest.mark.parametrize("args, fragment", [
    (("--seeds", "0,0"), "repeated"),
    (("--seed", "1", "--seeds", "0,1"), "first of --seeds"),
    (("--seeds", "0,x"), "--seeds takes comma-separated integers"),
])
def test_bad_seeds_are_one_line_before_any_work(tmp_path, args, fragment):
    out = invoke("evaluate", "--checkpoint", MNIST_CHECKPOINT, "--arch", "smallcnn", "--dataset", "mnist",
                 "--results-dir", tmp_path, "--quiet", *args)
    assert_one_line_error(out, fragment)
    assert not any(tmp_path.iterdir())
