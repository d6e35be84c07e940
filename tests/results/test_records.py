"""wmrbench.results.records.read_records refuses records inconsistent with themselves, in one line
(every reader goes through it: compare, the reports, the intervals). Records are written in
their real format by write_records, then damaged as a truncation or an edit would."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wmrbench.core.errors import WmrbenchError
from wmrbench.results.records import read_records, write_records


def _records(n: int = 30) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    clean = rng.uniform(-0.3, 1.0, n)
    pgd = clean - rng.uniform(0.0, 0.8, n)
    tr = pgd - rng.uniform(0.0, 0.1, n)
    return pd.DataFrame({"index": np.arange(n) * 3, "label": rng.integers(0, 10, n), "clean_correct": clean > 0,
                         "clean_margin": clean, "pgd_correct": pgd > 0, "pgd_margin": pgd,
                         "tr_correct@2": tr > 0, "tr_margin@2": tr})


def test_whole_records_are_read(tmp_path):
    write_records(tmp_path / "r.csv", _records())
    assert len(read_records(tmp_path / "r.csv")) == 30


@pytest.mark.parametrize(("damage", "fragment"), [
    ("cut", "line 31, example 87 has no valid"),
    ("flip", "line 6, example 12 has pgd_correct"),
    ("two", "has clean_correct 2, not 0 or 1"),
    ("nan", "has no valid tr_margin@2 (an empty cell)"),
    ("repeat", "example 0 is recorded twice"),
    ("label", "has label 1.5, not an integer >= 0"),
    ("empty", "holds no examples"),
])
def test_damaged_records_are_one_line(damage, fragment, tmp_path):
    path = tmp_path / "r.csv"
    records = _records()
    if damage == "flip":  # an edit: correct and margin disagree
        records.loc[4, "pgd_correct"] = not records.loc[4, "pgd_correct"]
    elif damage == "two":
        records["clean_correct"] = records["clean_correct"].astype(int)
        records.loc[2, "clean_correct"] = 2
    elif damage == "nan":
        records.loc[7, "tr_margin@2"] = np.nan
    elif damage == "repeat":
        records.loc[9, "index"] = 0
    elif damage == "label":
        records["label"] = records["label"].astype(float)
        records.loc[3, "label"] = 1.5
    elif damage == "empty":
        records = records.iloc[:0]
    write_records(path, records)
    if damage == "cut":  # the last row half written
        path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(WmrbenchError, match="is damaged") as caught:
        read_records(path)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)
