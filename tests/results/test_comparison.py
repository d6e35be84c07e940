"""wmrbench.results.comparison's verdict wording (the command's tests: tests/cli/test_compare*.py)."""

from __future__ import annotations

from wmrbench.results.comparison import ONE_RUN, verdict
from wmrbench.results.uncertainty import Difference


def test_equal_numbers_are_no_difference_not_b_higher():
    """A_sa is a weighted sum: two results of 100.00 may differ by 1e-14 (it read "B higher")."""
    tiny = Difference("A_sa", "2", 100.0, 100.0 + 1e-14, -1e-14, -1e-14, 0.0, 1.0)
    assert verdict(tiny).startswith("no difference (")
    assert verdict(Difference("A_rob", None, 50.0, 50.0, 0.0, -2.0, 2.0, 1.0)) == "equal (not significant at 5%; " + ONE_RUN + ")"
    assert verdict(Difference("A_rob", None, 51.0, 50.0, 1.0, 0.5, 1.5, 0.01)) == "A higher (significant at 5%; " + ONE_RUN + ")"
    assert verdict(Difference("A_rob", None, 49.0, 50.0, -1.0, -3.0, 1.0, 0.4)) == "B higher (not significant at 5%; " + ONE_RUN + ")"
