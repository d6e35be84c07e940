"""``wmrbench demo``: a bad option is one line before any training. The demo itself (two 30-epoch
digits runs, about 2 minutes of CPU) is measured in README's Quick start, not run by the tests."""

from __future__ import annotations

import pytest

from tests.conftest import assert_one_line_error, files_under, invoke


@pytest.mark.parametrize("args", [("--defense", "nope"), ("--alpha-test", "1,x")])
def test_a_bad_demo_option_is_one_line_and_trains_nothing(args, tmp_path):
    out = invoke("demo", *args, "--checkpoint-dir", tmp_path / "ck", "--results-dir", tmp_path / "res", "--quiet")
    assert_one_line_error(out)
    assert files_under(tmp_path) == set()
