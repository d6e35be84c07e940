"""Many independent runs as jobs: in this process (inline), as local processes, or as a SLURM job
array, through submitit (the ``slurm`` extra). One job per single run, each the run the command
would do alone, resumable from what it saved:

* :mod:`~wmrbench.launch.settings`: which launcher, and the scheduler's settings;
* :mod:`~wmrbench.launch.specs`: one single run (train one config, evaluate one model) and the
  expansions of the multi-run commands into such runs;
* :mod:`~wmrbench.launch.job`: the callable a job runs, with submitit's checkpoint protocol;
* :mod:`~wmrbench.launch.ledger`: which jobs of which sweep are queued or running;
* :mod:`~wmrbench.launch.submit`: submit the runs that are not finished, and wait or return;
* :mod:`~wmrbench.launch.tables`: ``reproduce table1`` / ``family`` in stages (train, evaluate, table).
"""

from wmrbench.launch.settings import Launcher, LaunchSettings, SlurmSettings
from wmrbench.launch.specs import EvalSpec, RunOutcome, Spec, TrainSpec, eval_specs, train_specs
from wmrbench.launch.submit import Launched, launch, submit

__all__ = [
    "EvalSpec", "Launched", "Launcher", "LaunchSettings", "RunOutcome", "SlurmSettings", "Spec", "TrainSpec",
    "eval_specs", "launch", "submit", "train_specs",
]
