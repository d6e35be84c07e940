"""The ``.partial/`` layout has one home, :mod:`wmrbench.evaluation.partial`, and readers of result
folders (the reports) can use it without loading the evaluation pipeline or the attack engine."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import HANG_S, REPO
from wmrbench.results import records
from wmrbench.evaluation import partial


def test_records_keeps_the_schema_and_partial_owns_the_layout(tmp_path) -> None:
    for name in ("PARTIAL_DIR", "MANIFEST_NAME", "BATCH_FILE", "saved_batches", "has_partial", "partial_progress",
                 "unfinished", "Unfinished"):
        assert not hasattr(records, name), name
        assert hasattr(partial, name), name
    # The layout as written and read: a batch file and a manifest in <run>/.partial/.
    folder = tmp_path / "run"
    assert partial.unfinished(folder) is None and not partial.has_partial(folder)
    partial.batch_path(folder, 3).parent.mkdir(parents=True)
    partial.batch_path(folder, 3).write_bytes(b"")
    (partial.partial_dir(folder) / partial.MANIFEST_NAME).write_text('{"n_batches": 8, "resume_command": "go on"}')
    assert partial.saved_batches(folder) == [3]
    stopped = partial.unfinished(folder)
    assert stopped is not None and stopped.progress == "1 of 8 batches done" and stopped.command == "go on"
    (folder / records.SUMMARY_NAME).write_text("{}")
    assert partial.unfinished(folder) is None  # a complete result is not unfinished


def test_the_reports_load_no_attack_engine() -> None:
    code = ("import sys, wmrbench.report.leaderboard; "
            "print(sorted(m for m in sys.modules if m.startswith(('wmrbench.attacks', 'wmrbench.evaluation.'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=HANG_S, check=True)
    assert out.stdout.strip() == "[]", out.stdout  # the layout is read from wmrbench.results.partial_layout
