#!/usr/bin/env bash
# One prepared GPU job (issue 21), at most 9 minutes: install, CUDA tests, s/epoch of MNIST
# TRADES+ours (solo eager, solo with the CUDA-graph attack, four stacked runs), then Table 1's
# training continued with --stop-after-epochs for the minutes left, and everything copied back
# through $OUT: the checkpoints so far (state.tar.gz), the benchmark JSON and the log.
#
# On the device machine (the `run` tool), from the repository root:
#
#   carry: [".gpu"]   where, here, before the call:
#       mkdir -p .gpu/mnist && cp ../shared/data/mnist/MNIST/raw/*-ubyte .gpu/mnist/ && gzip -f .gpu/mnist/*-ubyte
#       (.gpu/ is in .gitignore: it travels only because `carry` names it)
#       (a later call: cp <files_at>/state.tar.gz .gpu/state.tar.gz, and it continues from there)
#   command: bash benchmarks/gpu/job.sh            timeout_s: 570
#
#   bash benchmarks/gpu/job.sh --dry-run           # the same script on the CPU, tiny sizes, seconds
#
# Settings (environment): BUDGET_S (default 540: the whole job, copy-back included), JOB_WORK (its
# scratch folder: data, checkpoints, results; default /tmp/wmr-job), CARRY (default .gpu), OUT
# (set by the device machine; default JOB_WORK/out), PYTHON (default python3), TABLE1_CALLS (at most
# this many one-epoch table1 invocations; default 0: as many as the time allows), BUDGET_S_DRY
# (--dry-run's budget, default 840: a loaded 2-core CPU is slow, and the dry run tests the path,
# not the speed), STEP_SCALE (default 1: each step's time box times this; tests/cli/test_gpu_job.py
# sets it and the dry budget far above any run's time, so that its result never depends on speed),
# TRAIN_SEEDS_DRY (--dry-run's training seeds per Table 1 cell, default 1; the GPU job trains 3).
# Every step is time-boxed, so the copy-back always happens; a step that fails is logged and the
# job goes on to the next, so one broken part cannot waste the window.
set -u -o pipefail

DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
START=$(date +%s)
BUDGET_S=${BUDGET_S:-540}
if [ "$DRY" = 1 ]; then BUDGET_S=${BUDGET_S_DRY:-840}; fi
PYTHON=${PYTHON:-python3}
CARRY=${CARRY:-.gpu}
WORK=${JOB_WORK:-/tmp/wmr-job}
OUT=${OUT:-$WORK/out}
mkdir -p "$OUT" "$WORK"
LOG="$OUT/job.log"
export PYTHONUNBUFFERED=1
elapsed() { echo $(( $(date +%s) - START )); }
left() { echo $(( BUDGET_S - $(elapsed) )); }
say() { echo "[job $(elapsed)s] $*" | tee -a "$LOG"; }
# step NAME SECONDS CMD...: run CMD for at most SECONDS (and never past the copy-back's reserve).
RESERVE=30
step() {
  local name=$1 limit=$(( $2 * ${STEP_SCALE:-1} )); shift 2
  local room=$(( $(left) - RESERVE ))
  [ "$limit" -gt "$room" ] && limit=$room
  if [ "$limit" -le 5 ]; then say "$name: skipped, no time left"; return 1; fi
  say "$name: start (at most ${limit}s)"
  timeout --signal=TERM --kill-after=10 "$limit" "$@" 2>&1 | tee "$WORK/step.log" | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  say "$name: exit $rc"
  return "$rc"
}

say "dry-run=$DRY budget=${BUDGET_S}s work=$WORK out=$OUT"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$LOG"

# 1. Install: the machine has torch and the rest; the project goes in without its dependencies.
if [ "$DRY" = 0 ]; then
  step install 120 "$PYTHON" -m pip install -q --no-deps --no-build-isolation -e . || say "install failed: going on with the checkout on PYTHONPATH"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$PYTHON" -c "import torch, wmrbench; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" 2>&1 | tee -a "$LOG"

# 2. Data (MNIST carried gzipped) and the state of an earlier call (its checkpoints, results).
DATA="$WORK/data"
if [ "$DRY" = 0 ]; then
  mkdir -p "$DATA/MNIST/raw"
  for f in "$CARRY"/mnist/*.gz; do [ -e "$f" ] && gunzip -c "$f" > "$DATA/MNIST/raw/$(basename "${f%.gz}")"; done
  ls "$DATA/MNIST/raw" | tee -a "$LOG"
fi
if [ -f "$CARRY/state.tar.gz" ]; then
  tar -xzf "$CARRY/state.tar.gz" -C "$WORK" && say "restored the earlier call's checkpoints and results"
fi

# 3. The CUDA tests (on the CPU they skip, each with its printed reason).
CUDA_TESTS=(tests/training/test_stacked_cuda.py)
[ "$DRY" = 0 ] && CUDA_TESTS+=(tests/attacks/test_fastpaths.py)
step cuda-tests 150 "$PYTHON" -m pytest -q -rs -s -p no:cacheprovider "${CUDA_TESTS[@]}" || true

# 4. s/epoch of MNIST TRADES+ours: one run alone (attack through a CUDA graph, and eager), and
#    Table 1's four runs one after another and stacked (benchmarks/train.py, the stack part).
if [ "$DRY" = 1 ]; then
  BENCH_ARGS=(--device cpu --quick --batches 1 --batch-size 8 --stack-steps 1 --repeats 1)
else
  BENCH_ARGS=(--device cuda --batches 40 --repeats 3)
fi
step benchmark 150 "$PYTHON" benchmarks/train.py --only stack "${BENCH_ARGS[@]}" --out "$OUT/bench.json" || true

# 5. Table 1 with 3 training seeds per cell, the 12 runs as one stack (--stack on: each run
#    draws its own seed's batches into its own rows), continued for the minutes left with
#    --stop-after-epochs (every finished epoch checkpoints every run); a later call continues
#    from state.tar.gz. Its gains are then tested over the 3 seeds.
if [ "$DRY" = 1 ]; then
  TABLE_SEEDS=${TRAIN_SEEDS_DRY:-1}
  TABLE_ARGS=(--quick --epochs 2 --n-examples 16 --restarts 1 --device cpu --train-seeds "$TABLE_SEEDS")
else
  TABLE_SEEDS=3
  TABLE_ARGS=(--data-dir "$DATA" --device cuda --precision fp32 --train-seeds "$TABLE_SEEDS")
fi
# The stacked epoch's seconds as the benchmark measured them (0 if it did not), for the plan below.
BENCH_EPOCH_S=$("$PYTHON" - "$OUT/bench.json" <<'PY' 2>/dev/null || echo 0
import json, sys
rows = json.load(open(sys.argv[1]))["rows"]
print(int(next(r for r in rows if "vmap" in r["variant"])["s per 60k-image epoch (all its runs)"]) + 1)
PY
)
BENCH_EPOCH_S=$(( BENCH_EPOCH_S * TABLE_SEEDS ))  # an estimate: the stack holds TABLE_SEEDS times the runs measured
say "table1: the benchmark puts an epoch of the ${TABLE_SEEDS} seeds' stack at about ${BENCH_EPOCH_S}s"
# The first invocation trains one epoch (and measures start-up + epoch); each later one as many
# epochs as fit in the time left, at 1.25x the estimate. A killed invocation loses at most the
# epoch under way: every finished epoch is checkpointed.
EPOCH_S=0
STARTUP_S=0
CALLS=0
while :; do
  if [ "${TABLE1_CALLS:-0}" -gt 0 ] && [ "$CALLS" -ge "$TABLE1_CALLS" ]; then say "table1: $CALLS invocation(s), as TABLE1_CALLS asks"; break; fi
  room=$(( $(left) - RESERVE - STARTUP_S ))
  EPOCHS=1
  if [ "$CALLS" -gt 0 ]; then
    EPOCHS=$(( room * 4 / (EPOCH_S * 5 + 1) ))
    if [ "$EPOCHS" -lt 1 ]; then say "table1: stopping, one more epoch (${EPOCH_S}s + ${STARTUP_S}s start) does not fit"; break; fi
  fi
  CALLS=$(( CALLS + 1 ))
  before=$(elapsed)
  step table1 $(( $(left) - RESERVE )) "$PYTHON" -m wmrbench reproduce table1 "${TABLE_ARGS[@]}" --stack on --quiet \
    --checkpoint-dir "$WORK/checkpoints" --results-dir "$WORK/results" --stop-after-epochs "$EPOCHS"
  rc=$?
  took=$(( $(elapsed) - before ))
  if [ "$CALLS" = 1 ]; then
    EPOCH_S=$(( BENCH_EPOCH_S > 0 && BENCH_EPOCH_S < took ? BENCH_EPOCH_S : took ))
    STARTUP_S=$(( took - EPOCH_S ))
  fi
  [ "$rc" -ne 0 ] && { say "table1: exit $rc, stopping"; break; }
  if ! grep -q "resuming at epoch\|: training, " "$WORK/step.log"; then say "table1: nothing was left to train"; break; fi
done

# 6. Copy back: the checkpoints so far and the results (one archive), the benchmark JSON, the log.
tar -czf "$OUT/state.tar.gz" -C "$WORK" $(cd "$WORK" && ls -d checkpoints results 2>/dev/null) 2>>"$LOG" \
  && say "state.tar.gz: $(du -h "$OUT/state.tar.gz" | cut -f1)"
say "done in $(elapsed)s"
ls -la "$OUT" | tee -a "$LOG"
