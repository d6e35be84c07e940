"""A red team's findings, each ending in one clear line or a right result.

Every test drives the real Typer app (CliRunner) and asserts the exit code, the one line, and what
is on disk. The autouse fixture in conftest.py runs each test in an empty folder of its own.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import assert_one_line_error, files_under, invoke


@pytest.mark.parametrize("command", ["train", "evaluate", "attack"])
@pytest.mark.parametrize(("run", "why"), [
    ("x" * 300, "300 bytes long, more than 200"),
    ("a\nb", "control character '\\n'"),
    ("a\tb", "control character '\\t'"),
])
def test_a_bad_run_name_is_one_line_before_anything_is_written(command, run, why, tmp_path):
    args = {"train": ["train", "--epochs", "1", "--checkpoint-dir", tmp_path / "ck"],
            "evaluate": ["evaluate", "--checkpoint", tmp_path / "none.pt", "--results-dir", tmp_path / "res"],
            "attack": ["attack", "--checkpoint", tmp_path / "none.pt", "--results-dir", tmp_path / "res"]}[command]
    if command != "train":  # a real model file, so that only the name can be at fault
        import torch

        from wmrbench.models import create_model

        torch.save(create_model("digitsnet", 10, 1).state_dict(), tmp_path / "none.pt")
        args += ["--arch", "digitsnet", "--dataset", "digits"]
    line = assert_one_line_error(invoke(*args, "--run", run), "is not a run name", why)
    assert "\n" not in line and len(line) < 400  # a 300-character name is not echoed in full
    assert files_under(tmp_path) <= {"none.pt"}


def test_rerun_refuses_a_bad_run_name(tmp_path):
    summary = tmp_path / "summary.json"
    summary.write_text("{}")
    assert_one_line_error(invoke("rerun", summary, "--run", "a\rb"), "control character")


# --- results made by the real `evaluate` on digits, with a random small model -----------------------

def _digits_model(folder: Path) -> Path:
    import torch

    from wmrbench.models import create_model

    torch.manual_seed(0)
    path = folder / "digits.pt"
    torch.save(create_model("digitsnet", 10, 1).state_dict(), path)
    return path


def _evaluate(results: Path, run: str, *options: str, model: Path | None = None) -> None:
    model = model or _digits_model(results.parent)
    out = invoke("evaluate", "--checkpoint", model, "--arch", "digitsnet", "--dataset", "digits",
                 "--n-examples", "20", "--steps", "2", "--device", "cpu", "--results-dir", results, "--quiet",
                 "--run", run, *options)
    assert out.exit_code == 0, out.output


LATEX_SPECIAL = set("&%$#_{}~^\\")
LATEX_ESCAPES = [r"\textbackslash{}", r"\textasciitilde{}", r"\textasciicircum{}",
                 r"\&", r"\%", r"\$", r"\#", r"\_", r"\{", r"\}"]


def _unescape(cell: str) -> str:
    """A LaTeX cell back to its text, asserting it holds no special character left unescaped."""
    out, i = [], 0
    while i < len(cell):
        escape = next((e for e in LATEX_ESCAPES if cell.startswith(e, i)), None)
        if escape is not None:
            out.append({"textbackslash{}": "\\", "textasciitilde{}": "~", "textasciicircum{}": "^"}.get(escape[1:], escape[-1]))
            i += len(escape)
            continue
        assert cell[i] not in LATEX_SPECIAL, f"unescaped {cell[i]!r} in {cell!r}"
        out.append(cell[i])
        i += 1
    return "".join(out)


def test_latex_leaderboard_escapes_every_special_character_of_a_run_name(tmp_path):
    import shutil

    name = "x_1&2%$#{}~^"
    results = tmp_path / "results"
    _evaluate(results, name)
    out = invoke("leaderboard", results, "--format", "latex", "--table", "uniform")
    assert out.exit_code == 0, out.output
    tex = (results / "leaderboard-uniform.tex").read_text()
    depth = 0  # braces balance, never closing more than they opened
    for i, ch in enumerate(tex):
        if ch in "{}" and tex[i - 1] != "\\":
            depth += 1 if ch == "{" else -1
            assert depth >= 0, tex
    assert depth == 0, tex
    body = tex.split("\\midrule\n")[1].split("\\bottomrule")[0]
    rows = [line.removesuffix(r" \\") for line in body.splitlines()]
    header = tex.split("\\toprule\n")[1].splitlines()[0]
    n_columns = header.count(" & ") + 1
    assert len(rows) == 1
    cells = rows[0].split(" & ")  # '&' inside a cell is escaped, so this splits the columns only
    assert len(cells) == n_columns
    # The one macro wmrbench writes itself: the interval's \ensuremath{\pm}.
    texts = [_unescape(cell.replace(r" \ensuremath{\pm} ", " ")) for cell in cells]
    assert name in texts, texts
    engine = shutil.which("pdflatex") or shutil.which("lualatex") or shutil.which("xelatex")
    if engine is None:
        pytest.skip("no TeX engine installed: the .tex was parsed (escapes, braces, columns), not compiled")
    doc = tmp_path / "doc.tex"
    doc.write_text("\\documentclass{article}\\usepackage{booktabs}\\begin{document}\n" + tex + "\\end{document}\n")
    compiled = subprocess.run([engine, "-interaction=nonstopmode", "-halt-on-error", doc.name], cwd=tmp_path,
                              capture_output=True, text=True, timeout=HANG_S)
    assert compiled.returncode == 0, compiled.stdout[-2000:]


@pytest.mark.slow  # 2 s measured on a loaded 2-core CPU (tests/README.md)
def test_plot_survives_degenerate_results_and_names_a_bad_one(tmp_path):
    results = tmp_path / "results"
    model = _digits_model(tmp_path)
    degenerate = {"eps0": ["--eps", "0"], "steps0": ["--steps", "0"], "alpha0": ["--alpha-test", "0"],
                  # weights of all but the lowest-margin point underflow to exactly 0
                  "underflow": ["--alpha-test", "100000", "--eps", "0.5"]}
    for run, options in degenerate.items():
        _evaluate(results, run, *options, model=model)
    (results / "broken").mkdir()  # a result whose records are unreadable: its plot alone is lost
    for name in ("summary.json",):
        (results / "broken" / name).write_bytes((results / "eps0" / name).read_bytes())
    (results / "broken" / "records.csv").write_text("index,pgd_margin\n0,abc\n")
    out = invoke("plot", results)
    assert out.exit_code == 0, out.output
    assert "Traceback" not in out.output
    written = files_under(results / "plots")
    for run in degenerate:
        assert {f"weights-{run}.png", f"weights-{run}.svg"} <= written
    assert "metrics-digits.png" in written
    warnings = [line for line in out.stderr.splitlines() if line.startswith("Warning:")]
    assert any("broken" in line for line in warnings), out.stderr
    assert not any(run in line for line in warnings for run in degenerate), out.stderr


@pytest.mark.parametrize(("text", "key"), [('steps = "many"\n', "steps = 'many'"),
                                           ("[evaluate]\nn-examples = 2.5\n", "n-examples = 2.5")])
def test_a_wrong_type_in_a_config_file_names_the_file_and_the_key(text, key, tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text(text)
    out = invoke("evaluate", "--config", config, "--checkpoint", tmp_path / "m.pt", "--arch", "digitsnet",
                 "--results-dir", tmp_path / "results")
    assert_one_line_error(out, f"--config: {config}: {key} is not a valid value")
    assert files_under(tmp_path) == {"bad.toml"}


@pytest.mark.parametrize("args", [["evaluate", "--steps", "2.5"], ["train", "--epochs", "x"], ["evaluate", "--nope"]])
def test_a_usage_error_is_one_line_not_a_box(args, tmp_path):
    out = invoke(*args, "--results-dir" if args[0] == "evaluate" else "--checkpoint-dir", tmp_path / "out")
    line = assert_one_line_error(out, args[1])
    assert "╭" not in out.output and f"wmrbench {args[0]} --help" in line
    assert files_under(tmp_path) == set()


def test_another_attack_without_run_gets_its_own_default_name(tmp_path):
    model = _digits_model(tmp_path)
    results = tmp_path / "results"
    common = ("evaluate", "--checkpoint", model, "--arch", "digitsnet", "--dataset", "digits", "--n-examples", "8",
              "--steps", "2", "--alpha-test", "1", "--device", "cpu", "--results-dir", results, "--quiet")
    assert invoke(*common).exit_code == 0
    out = invoke(*common, "--attack", "apgd-ce")
    assert out.exit_code == 0, out.output
    assert {"digits/summary.json", "digits-apgd-ce/summary.json"} <= files_under(results)
    before = {p: (results / p).stat().st_mtime_ns for p in files_under(results)}
    # The same attack again is refused before any work: nothing written, nothing changed.
    assert_one_line_error(invoke(*common, "--attack", "apgd-ce"), "digits-apgd-ce/summary.json already exists")
    assert {p: (results / p).stat().st_mtime_ns for p in files_under(results)} == before


def test_leaderboard_follows_a_symlinked_result_and_warns_about_broken_links_and_loops(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    _evaluate(elsewhere, "far")
    results = tmp_path / "results"
    _evaluate(results, "near")
    (results / "linked").symlink_to(elsewhere / "far", target_is_directory=True)
    (results / "dangling").symlink_to(tmp_path / "gone")
    (results / "near" / "loop").symlink_to(results, target_is_directory=True)
    out = invoke("leaderboard", results, "--table", "uniform", "--format", "csv")
    assert out.exit_code == 0, out.output
    table = (results / "leaderboard-uniform.csv").read_text()
    assert "\ndigits,linked," in table and "\ndigits,near," in table  # the linked result is a row
    warnings = [line for line in out.stderr.splitlines() if line.startswith("Warning:")]
    assert any("dangling" in w and "does not exist" in w for w in warnings), out.stderr
    assert any("loop" in w and "already read" in w for w in warnings), out.stderr
    assert len(warnings) == 2


def test_leaderboard_removes_only_its_own_stale_temporary_files(tmp_path):
    import os

    results = tmp_path / "results"
    _evaluate(results, "near")
    stale = results / ".leaderboard-uniform.md.0123456789ab.tmp"  # a write killed an hour ago
    fresh = results / ".leaderboard-uniform.md.ba9876543210.tmp"  # a live writer's
    foreign = [results / ".leaderboard-uniform.md.notours.tmp", results / ".notes.md.0123456789ab.tmp"]
    for path in [stale, fresh, *foreign]:
        path.write_text("partial")
    for path in [stale, *foreign]:
        os.utime(path, (1_000_000_000, 1_000_000_000))
    out = invoke("leaderboard", results, "--table", "uniform")
    assert out.exit_code == 0, out.output
    assert not stale.exists()
    assert fresh.exists() and all(p.exists() for p in foreign)
    assert (results / "leaderboard-uniform.md").is_file()


def test_an_evaluation_logs_one_line_per_batch_without_a_terminal_and_says_it_clamped_n_examples(tmp_path):
    model = _digits_model(tmp_path)
    results = tmp_path / "results"
    out = invoke("evaluate", "--checkpoint", model, "--arch", "digitsnet", "--dataset", "digits", "--n-examples",
                 "100000", "--batch-size", "200", "--steps", "1", "--alpha-test", "1", "--device", "cpu",
                 "--results-dir", results, "--run", "all")
    assert out.exit_code == 0, out.output
    from wmrbench.core.config import DatasetName
    from wmrbench.data import load_split

    n = len(load_split(DatasetName.DIGITS, "", train=False))
    assert f"Note: --n-examples 100000 is more than the {n} examples of the digits test split: all {n} are used" in out.stderr
    batches = [line for line in out.stderr.splitlines() if " examples (" in line]
    assert len(batches) == -(-n // 200)  # one line per batch (CliRunner's stderr is not a terminal)
    assert batches[-1].startswith(f"attacking: {n}/{n} examples (100%)")
    import json

    assert json.loads((results / "all" / "summary.json").read_text())["metrics"]["n_examples"] == n
    quiet = invoke("evaluate", "--checkpoint", model, "--arch", "digitsnet", "--dataset", "digits", "--n-examples",
                   "8", "--steps", "1", "--device", "cpu", "--results-dir", results, "--run", "q", "--quiet")
    assert quiet.exit_code == 0 and " examples (" not in quiet.stderr


def test_a_model_function_without_a_checkpoint_is_said_to_have_random_weights(tmp_path):
    factory = tmp_path / "net.py"
    factory.write_text("from wmrbench.models import create_model\n\ndef net():\n    return create_model('digitsnet', 10, 1)\n")
    out = invoke("evaluate", "--model", f"{factory}:net", "--dataset", "digits", "--n-examples", "4", "--steps", "1",
                 "--device", "cpu", "--results-dir", tmp_path / "results", "--quiet")
    assert out.exit_code == 0, out.output
    # (the few-examples warnings of 4 images are tested with the intervals)
    warnings = [line for line in out.stderr.splitlines() if line.startswith("Warning:") and "rests on about" not in line]
    assert warnings == [f"Warning: --model {factory}:net without --checkpoint: the weights are those net() builds "
                        "(random, unless it loads trained ones itself); give --checkpoint FILE to load a state_dict"]
    assert (tmp_path / "results" / "net" / "summary.json").is_file()


def test_every_summary_holds_the_weights_sha256_and_rerun_names_a_changed_checkpoint(tmp_path):
    import json

    import torch

    from wmrbench.evaluation.partial import model_sha256
    from wmrbench.models import create_model

    model = _digits_model(tmp_path)
    results = tmp_path / "results"
    _evaluate(results, "first", model=model)
    summary = json.loads((results / "first" / "summary.json").read_text())
    net = create_model("digitsnet", 10, 1)
    net.load_state_dict(torch.load(model, weights_only=True))
    assert summary["model_sha256"] == model_sha256(net) and len(summary["data_sha256"]) == 64
    same = invoke("rerun", results / "first" / "summary.json", "--quiet")
    assert same.exit_code == 0, same.output
    torch.manual_seed(1)  # other weights in the same file
    torch.save(create_model("digitsnet", 10, 1).state_dict(), model)
    out = invoke("rerun", results / "first" / "summary.json", "--run", "again", "--quiet")
    assert out.exit_code == 1, out.output
    line = next(line for line in out.stdout.splitlines() if line.startswith("differs from"))
    assert f"the weights changed: {model} is not the file evaluated then" in line
    assert "examples changed" not in line
    assert (results / "again" / "summary.json").is_file()


# --- Ctrl-C: a real process, interrupted once it has saved something --------------------------------

def _interrupt_once(args: list[object], cwd: Path, saved: Path) -> tuple[int, str]:
    """Start ``python -m wmrbench ARGS``, send SIGINT once ``saved`` exists (and the process still
    runs); its exit code and stderr."""
    import contextlib
    import os
    import signal
    import subprocess

    from tests.conftest import HANG_S, PYTHON, REPO, wait_until

    env = {**{k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")},
           "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([PYTHON, "-m", "wmrbench", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(saved.exists, f"{saved} appeared", proc)
        assert proc.poll() is None, "it finished before it could be interrupted"
        os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=HANG_S)
        return proc.returncode, err
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()


@pytest.mark.slow  # two real processes' start-up, and the resumed evaluation
def test_ctrl_c_during_evaluate_prints_the_resume_command_that_finishes_it(tmp_path):
    import shlex

    model = _digits_model(tmp_path)
    results = tmp_path / "results"
    args = ["evaluate", "--checkpoint", model, "--arch", "digitsnet", "--dataset", "digits", "--n-examples", "360",
            "--batch-size", "4", "--steps", "5", "--alpha-test", "1", "--device", "cpu", "--quiet",
            "--results-dir", results, "--run", "cut"]
    code, err = _interrupt_once(args, tmp_path, results / "cut" / ".partial" / "batch-000000.pt")
    assert code == 130, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"Interrupted: {results / 'cut'} keeps "), err
    assert " of 90 batches done; continue with: wmrbench evaluate " in lines[0] and "Traceback" not in err
    assert not (results / "cut" / "summary.json").exists()
    command = shlex.split(lines[0].split("continue with: ", 1)[1])
    assert command[0] == "wmrbench" and "--resume" in command
    out = invoke(*command[1:])
    assert out.exit_code == 0, out.output
    assert (results / "cut" / "summary.json").is_file() and not (results / "cut" / ".partial").exists()


@pytest.mark.slow  # a real process's start-up and first epoch
def test_ctrl_c_during_train_says_which_epoch_was_saved_and_how_to_resume(tmp_path):
    import shlex

    import torch

    checkpoints = tmp_path / "checkpoints"
    args = ["train", "--dataset", "digits", "--epochs", "200", "--steps", "1", "--device", "cpu", "--quiet",
            "--checkpoint-dir", checkpoints, "--run", "cut"]
    code, err = _interrupt_once(args, tmp_path, checkpoints / "cut" / "metrics.jsonl")
    assert code == 130, err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("epoch ")]
    assert len(lines) == 1 and lines[0].startswith(f"Interrupted: run cut: {checkpoints / 'cut' / 'last.pt'} holds epoch "), err
    epoch = int(lines[0].split(" holds epoch ")[1].split()[0])
    assert epoch >= 1 and f"holds epoch {epoch} of 200 (the epoch that was running is lost)" in lines[0]
    assert torch.load(checkpoints / "cut" / "last.pt", weights_only=True)["epoch"] == epoch
    command = shlex.split(lines[0].split("continue with: ", 1)[1])
    assert command == ["wmrbench", "train", "--run", "cut", "--checkpoint-dir", str(checkpoints), "--resume"]


def test_mnist_test_split_alone_is_read_and_gz_files_are_named_to_unpack(tmp_path):
    import gzip
    import json
    import shutil

    from tests.conftest import MNIST_CHECKPOINT, MNIST_DIR, require_mnist

    require_mnist()
    only_test = tmp_path / "only-test" / "MNIST" / "raw"
    only_test.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):  # no training files
        shutil.copy(MNIST_DIR / "MNIST" / "raw" / name, only_test / name)
    common = ("evaluate", "--checkpoint", MNIST_CHECKPOINT, "--arch", "smallcnn", "--dataset", "mnist",
              "--n-examples", "8", "--steps", "1", "--alpha-test", "1", "--device", "cpu", "--quiet")
    out = invoke(*common, "--data-dir", tmp_path / "only-test", "--results-dir", tmp_path / "results", "--run", "t")
    assert out.exit_code == 0, out.output
    assert json.loads((tmp_path / "results" / "t" / "summary.json").read_text())["metrics"]["n_examples"] == 8
    packed = tmp_path / "packed" / "MNIST" / "raw"
    packed.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (packed / f"{name}.gz").write_bytes(gzip.compress((only_test / name).read_bytes(), compresslevel=1))
    out = invoke(*common, "--data-dir", tmp_path / "packed", "--results-dir", tmp_path / "results", "--run", "p")
    assert_one_line_error(out, f"{packed / 't10k-images-idx3-ubyte'} is missing, but", "unpack the .gz files",
                          "gunzip -k")
    assert not (tmp_path / "results" / "p").exists()


# --- item 6: labels that tell the truth ---------------------------------------------------------------

def test_apgd_rows_show_no_step_size_and_plots_name_the_attack(tmp_path):
    import csv

    import matplotlib

    model = _digits_model(tmp_path)
    results = tmp_path / "results"
    _evaluate(results, "pgd", model=model)
    _evaluate(results, "apgd", "--attack", "apgd-ce", model=model)
    out = invoke("leaderboard", results, "--table", "uniform", "--format", "csv")
    assert out.exit_code == 0, out.output
    rows = {r["Model"]: r for r in csv.DictReader((results / "leaderboard-uniform.csv").open())}
    assert rows["pgd"]["Step size"] == "0.01" and rows["apgd"]["Step size"] == ""  # APGD ignores it
    assert rows["apgd"]["Attack"] == "APGD-CE"
    apgd_only = tmp_path / "apgd-only"
    (apgd_only).mkdir()
    (apgd_only / "apgd").symlink_to(results / "apgd", target_is_directory=True)
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # text kept as text, to be read back
        out = invoke("plot", apgd_only, "--output-dir", tmp_path / "plots")
    assert out.exit_code == 0, out.output
    metrics = (tmp_path / "plots" / "metrics-digits.svg").read_text()
    weights = (tmp_path / "plots" / "weights-apgd.svg").read_text()
    assert "A_rob: accuracy under APGD-CE" in metrics and "A_tr: accuracy under weighted APGD-CE" in metrics
    assert "PGD points" not in metrics and "PGD's points" not in metrics
    assert "margin at the APGD-CE point" in weights and "APGD-CE points" in weights


def test_sort_by_ranks_within_a_data_set_and_alpha_test():
    import pandas as pd

    from wmrbench.report.tables import sort_rows

    frame = pd.DataFrame({
        "Dataset": ["mnist", "mnist", "cifar10", "cifar10", "mnist", "mnist"],
        "Model": ["a", "a", "b", "c", "b", "b"],
        "alpha_test": [1.0, 2.0, 1.0, 1.0, 1.0, 2.0],
        "A_tr": [50.0, 40.0, 90.0, 95.0, 60.0, 30.0],
    })
    ranked = sort_rows(frame, "A_tr")
    assert list(zip(ranked["Dataset"], ranked["alpha_test"], ranked["Model"])) == [
        ("cifar10", 1.0, "c"), ("cifar10", 1.0, "b"),  # CIFAR-10's 95 and 90 are not ranked above MNIST's rows
        ("mnist", 1.0, "b"), ("mnist", 1.0, "a"),
        ("mnist", 2.0, "a"), ("mnist", 2.0, "b"),
    ]


def test_the_terminal_leaderboard_fits_120_columns_and_the_file_keeps_every_protocol_column(tmp_path):
    from tests.conftest import files_under as _files

    results = tmp_path / "results"
    model = _digits_model(tmp_path)
    for run in ("a-rather-long-model-name-0", "a-rather-long-model-name-1"):
        _evaluate(results, run, model=model)
    out = invoke("leaderboard", results)
    assert out.exit_code == 0, out.output
    assert max(len(line) for line in out.stdout.splitlines()) <= 120, out.stdout
    assert "Attack PGD, Norm Linf, eps 0.1, Steps 2, Step size 0.01" in " ".join(out.stdout.split())
    header = (results / "leaderboard-non-uniform.md").read_text().splitlines()[0]
    for column in ("Attack", "Norm", "eps", "Steps", "Step size", "Restarts", "Examples", "Precision"):
        assert f" {column} " in header
    assert {"leaderboard-non-uniform.md", "leaderboard-uniform.md"} <= _files(results)


def test_evaluate_defense_and_alpha_train_label_a_plain_checkpoint_for_compare_paper(tmp_path):
    import csv
    import json

    from tests.conftest import MNIST_CHECKPOINT, MNIST_DIR, require_mnist

    require_mnist()
    results = tmp_path / "results"
    common = ("evaluate", "--checkpoint", MNIST_CHECKPOINT, "--arch", "smallcnn", "--dataset", "mnist", "--data-dir",
              MNIST_DIR, "--n-examples", "8", "--steps", "1", "--alpha-test", "1", "--device", "cpu", "--quiet",
              "--results-dir", results)
    out = invoke(*common, "--defense", "trades", "--alpha-train", "0", "--run", "trades")
    assert out.exit_code == 0, out.output
    model = json.loads((results / "trades" / "summary.json").read_text())["model"]
    assert model["defense"] == "trades" and model["alpha_train"] == 0.0
    board = invoke("leaderboard", results, "--table", "non-uniform", "--format", "csv", "--compare-paper")
    assert board.exit_code == 0, board.output
    row = next(csv.DictReader((results / "leaderboard-non-uniform.csv").open()))
    assert row["Defense"] == "TRADES" and row["A_tr (paper)"] not in ("", "-")  # the paper's TRADES row, alpha_test 1
    assert_one_line_error(invoke(*common, "--alpha-train", "2", "--run", "x"), "give --defense pgd or trades too")
    assert_one_line_error(invoke(*common, "--defense", "svm", "--run", "x"), "svm")
    assert not (results / "x").exists()


def test_train_n_train_and_max_steps_make_a_first_try_on_a_subset(tmp_path):
    import json

    import torch

    checkpoints = tmp_path / "checkpoints"
    out = invoke("train", "--dataset", "digits", "--n-train", "64", "--max-steps", "2", "--epochs", "1",
                 "--batch-size", "16", "--steps", "1", "--device", "cpu", "--quiet", "--checkpoint-dir", checkpoints,
                 "--run", "first-try")
    assert out.exit_code == 0, out.output
    saved = torch.load(checkpoints / "first-try" / "last.pt", weights_only=True)
    assert saved["config"]["n_train"] == 64 and saved["config"]["max_steps"] == 2
    epoch = json.loads((checkpoints / "first-try" / "metrics.jsonl").read_text().splitlines()[0])
    # 2 steps of 16 examples: the adversarial accuracy is a count out of 32
    assert round(epoch["adv_accuracy"] * 32, 6) == round(epoch["adv_accuracy"] * 32)
    assert "n_train: 64" in out.stdout and "max_steps: 2" in out.stdout
    assert_one_line_error(invoke("train", "--n-train", "-1", "--checkpoint-dir", checkpoints, "--run", "bad"),
                          "--n-train must be an integer >= 0")
    assert not (checkpoints / "bad").exists()


def test_plot_removes_its_own_stale_temporary_files(tmp_path):
    import os

    results = tmp_path / "results"
    _evaluate(results, "near")
    plots = results / "plots"
    plots.mkdir()
    stale = plots / ".weights-near.png.0123456789ab.tmp"
    other = plots / ".weights-near.png.0123456789ab.tmp.keep"
    for path in (stale, other):
        path.write_text("partial")
        os.utime(path, (1_000_000_000, 1_000_000_000))
    out = invoke("plot", results)
    assert out.exit_code == 0, out.output
    assert not stale.exists() and other.exists() and (plots / "weights-near.png").is_file()
