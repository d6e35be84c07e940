"""The slurm launcher, tested as submitit tests its own: ``sbatch``, ``sacct`` and ``scancel``
replaced on PATH by stand-ins that record what they were given (the sbatch script) and answer as
SLURM does. Nothing is trained: the jobs are only submitted."""

from __future__ import annotations

import os
import pickle
import re
import stat
import sys
from pathlib import Path

import pytest

from tests.conftest import assert_one_line_error, invoke

SBATCH = """#!/bin/sh
# Records the script it was given and answers as SLURM's sbatch does.
n=$(cat "$STANDIN/count" 2>/dev/null || echo 0); n=$((n + 1)); echo $n > "$STANDIN/count"
cp "$1" "$STANDIN/sbatch-$n.sh"
echo "Submitted batch job $((4200 + n))"
"""
SACCT = """#!/bin/sh
# Every job of the array is in the state the test wrote (RUNNING, COMPLETED ...).
echo "$@" >> "$STANDIN/sacct-calls"
state=$(cat "$STANDIN/state" 2>/dev/null || echo RUNNING)
n=$(cat "$STANDIN/count")
echo "JobID|State|NodeList"
for i in 0 1 2 3; do echo "$((4200 + n))_$i|$state|node1"; done
"""
SCANCEL = """#!/bin/sh
echo "$@" >> "$STANDIN/scancel-calls"
"""


@pytest.fixture
def standins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # srun: submitit checks it is there (the script calls it on the node; never run here)
    for name, text in (("sbatch", SBATCH), ("sacct", SACCT), ("scancel", SCANCEL), ("srun", "#!/bin/sh\nexit 1\n")):
        path = bin_dir / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    record = tmp_path / "standin"
    record.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("STANDIN", str(record))
    return record


TRAIN = ("train", "--dataset", "digits", "--alpha-train", "0,2", "--epochs", "2", "--device", "cpu")


def _sbatch_options(script: str) -> dict[str, str]:
    return dict(re.findall(r"^#SBATCH --([\w-]+)=(.*)$", script, flags=re.M))


def test_train_sweep_is_one_array_of_one_task_per_run_with_the_resources_asked(standins: Path, tmp_path: Path):
    out = invoke(*TRAIN, "--launcher", "slurm", "--partition", "gpu", "--time-min", "90", "--gpus-per-job", "2",
                 "--cpus-per-job", "8", "--array-parallelism", "1", "--account", "lab", "--sbatch", "mem=64G",
                 "--sbatch", "--qos=high")
    assert out.exit_code == 0, out.output
    script = (standins / "sbatch-1.sh").read_text()
    options = _sbatch_options(script)
    assert options["array"] == "0-1%1"  # two runs (alpha_train 0 and 2), one at a time
    assert options["partition"] == "gpu" and options["account"] == "lab"
    assert options["time"] == "90" and options["gpus-per-node"] == "2" and options["cpus-per-task"] == "8"
    assert options["mem"] == "64G" and options["qos"] == "high"
    assert options["signal"].startswith("USR2@")  # the job is told before its time limit: checkpoint, requeue
    # The command line: submitit's runner on this interpreter, over the folder of pickled runs.
    command = [line for line in script.splitlines() if "submitit.core._submit" in line]
    assert len(command) == 1 and sys.executable in command[0] and "srun" in command[0]
    # Each task unpickles the run it trains: the configs `train` would build inline.
    folder = Path(re.search(r"submitit.core._submit '?([^' ]+)", command[0]).group(1))
    runs = []
    for task in (0, 1):
        with open(folder / f"4201_{task}_submitted.pkl", "rb") as f:
            delayed = pickle.load(f)
        runs.append((delayed.function.spec.cfg.run, delayed.function.spec.cfg.alpha_train, delayed.function.spec.resume))
    assert sorted(runs) == [("digits-trades-a0", 0.0, False), ("digits-trades-a2", 2.0, False)]
    assert "4201_0 (digits-trades-a0)" in out.stdout and "4201_1 (digits-trades-a2)" in out.stdout
    assert "sacct -j 4201" in out.stdout and "--resume" in out.stdout


def test_a_second_launch_while_the_first_is_queued_is_refused_naming_its_jobs(standins: Path):
    assert invoke(*TRAIN, "--launcher", "slurm").exit_code == 0
    (standins / "state").write_text("PENDING\n")
    line = assert_one_line_error(invoke(*TRAIN, "--launcher", "slurm"), "already queued or running", "4201_0", "4201_1",
                                 "scancel")
    assert "digits-trades-a0" in line
    assert not (standins / "sbatch-2.sh").exists()  # nothing submitted
    # Once they have ended (here: failed before saving anything), resume submits the runs again.
    (standins / "state").write_text("FAILED\n")
    out = invoke(*TRAIN, "--launcher", "slurm", "--resume")
    assert out.exit_code == 0, out.output
    assert _sbatch_options((standins / "sbatch-2.sh").read_text())["array"] == "0-1%2"


@pytest.mark.slow  # 12 s measured on the loaded 2-core machine: one real (tiny) training run
def test_resume_collects_the_finished_runs_and_submits_only_the_others(standins: Path):
    small = ("--dataset", "digits", "--epochs", "1", "--n-train", "32", "--steps", "1", "--device", "cpu", "--quiet")
    done = invoke("train", *small, "--run", "sweep-a0")  # what the job of alpha_train 0 left: a finished run
    assert done.exit_code == 0, done.output
    out = invoke("train", *small, "--alpha-train", "0,2", "--run", "sweep", "--launcher", "slurm", "--resume")
    assert out.exit_code == 0, out.output
    assert "sweep-a0: finished already" in out.stdout
    assert "array" not in _sbatch_options((standins / "sbatch-1.sh").read_text())  # one run left: one job
    assert "4201 (sweep-a2)" in out.stdout
    with open(next(Path("jobs").glob("*/4201_submitted.pkl")), "rb") as f:
        assert pickle.load(f).function.spec.cfg.run == "sweep-a2"


def test_the_launcher_table_of_the_config_file_sets_the_jobs(standins: Path, tmp_path: Path):
    config = tmp_path / "cluster.toml"
    config.write_text('[launcher]\nlauncher = "slurm"\npartition = "a100"\ntime-min = 30\nsbatch = ["mem=8G"]\n')
    out = invoke(*TRAIN, "--config", config, "--partition", "h100")  # the command line wins
    assert out.exit_code == 0, out.output
    options = _sbatch_options((standins / "sbatch-1.sh").read_text())
    assert (options["partition"], options["time"], options["mem"]) == ("h100", "30", "8G")
    config.write_text('[launcher]\npartitoin = "a100"\n')
    assert_one_line_error(invoke(*TRAIN, "--config", config), "[launcher] has no setting 'partitoin'", "partition")


def test_without_submitit_one_line_names_the_install_command(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit -> ImportError
    for kind in ("local", "slurm"):
        assert_one_line_error(invoke(*TRAIN, "--launcher", kind), f"--launcher {kind} needs submitit",
                              "pip install 'wmrbench[slurm]'")


def test_bad_launcher_settings_are_one_line_before_any_submission(standins: Path):
    assert_one_line_error(invoke(*TRAIN, "--launcher", "pbs"), "unknown launcher 'pbs'", "inline, local, slurm")
    assert_one_line_error(invoke(*TRAIN, "--launcher", "slurm", "--sbatch", "mem"), "--sbatch takes KEY=VALUE")
    assert_one_line_error(invoke(*TRAIN, "--launcher", "slurm", "--time-min", "0"), "--time-min")
    assert_one_line_error(invoke(*TRAIN, "--launcher", "slurm", "--stack", "on"), "--stack")
    assert not (standins / "count").exists()


def test_a_job_checkpoints_as_the_same_run_resumed():
    from wmrbench.core.config import DatasetName, Defense
    from wmrbench.launch.job import RunJob
    from wmrbench.launch.specs import TrainSpec
    from wmrbench.core.presets import train_config

    spec = TrainSpec(train_config(DatasetName.DIGITS, Defense.TRADES, run="r", epochs=1))
    delayed = RunJob(spec).checkpoint()
    assert delayed.function.spec == TrainSpec(spec.cfg, resume=True)


def test_evaluate_of_several_zoo_models_is_one_task_per_model(standins: Path):
    out = invoke("evaluate", "--model-id", "Carmon2019Unlabeled", "--model-id", "Sehwag2021Proxy_R18", "--n-examples", "100",
                 "--launcher", "slurm", "--gpus-per-job", "1")
    assert out.exit_code == 0, out.output
    assert _sbatch_options((standins / "sbatch-1.sh").read_text())["array"] == "0-1%2"
    folder = next(Path("jobs").glob("*/4201_0_submitted.pkl")).parent
    specs = [pickle.load(open(folder / f"4201_{i}_submitted.pkl", "rb")).function.spec for i in (0, 1)]
    assert sorted((s.source.model_id, s.cfg.run, s.cfg.n_examples) for s in specs) == [
        ("Carmon2019Unlabeled", "Carmon2019Unlabeled", 100), ("Sehwag2021Proxy_R18", "Sehwag2021Proxy_R18", 100)]


@pytest.mark.parametrize("which, runs", [("table1", 4), ("family", 7)])
def test_a_reproduction_submits_its_trainings_first_one_task_per_run(standins: Path, which: str, runs: int):
    out = invoke("reproduce", which, "--quick", "--launcher", "slurm", "--partition", "gpu")
    assert out.exit_code == 0, out.output
    assert _sbatch_options((standins / "sbatch-1.sh").read_text())["array"] == f"0-{runs - 1}%{runs}"
    assert f"train: {runs} run(s) as jobs" in out.stdout and "run the same command again" in out.stdout
    # While they are queued, the same reproduction is refused by job id.
    assert_one_line_error(invoke("reproduce", which, "--quick", "--launcher", "slurm"), "already queued or running", "4201_0")



def _submitted_specs(count: int) -> list:
    folder = next(Path("jobs").glob("*/4201_0_submitted.pkl")).parent
    return [pickle.load(open(folder / f"4201_{i}_submitted.pkl", "rb")).function.spec for i in range(count)]


def test_train_seeds_and_an_alpha_sweep_are_one_task_per_run_named_as_inline(standins: Path):
    out = invoke(*TRAIN, "--seeds", "0,1", "--run", "d", "--launcher", "slurm")
    assert out.exit_code == 0, out.output
    assert _sbatch_options((standins / "sbatch-1.sh").read_text())["array"] == "0-3%4"
    runs = sorted((s.cfg.run, s.cfg.alpha_train, s.cfg.seed) for s in _submitted_specs(4))
    assert runs == [("d-a0-s0", 0.0, 0), ("d-a0-s1", 0.0, 1), ("d-a2-s0", 2.0, 0), ("d-a2-s1", 2.0, 1)]


def test_several_checkpoints_of_a_glob_are_one_task_each(standins: Path, digits_runs: dict[str, Path]):
    pattern = str(digits_runs["trades-a0"].parent.parent / "*" / "last.pt")
    out = invoke("evaluate", "--checkpoint", pattern, "--n-examples", "20", "--launcher", "slurm")
    assert out.exit_code == 0, out.output
    specs = _submitted_specs(len(digits_runs))
    assert sorted(s.cfg.run for s in specs) == sorted(digits_runs)
    assert {s.cfg.n_examples for s in specs} == {20}
