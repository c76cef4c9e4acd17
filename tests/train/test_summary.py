"""The end-of-run summary's pieces (the whole summary is checked on a real screen in
tests/cli/test_screen.py)."""

from __future__ import annotations

import pytest

from launcher.train.summary import duration


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(5.04, "5.0s"), (59.94, "59.9s"), (83.2, "1m 23s"), (3599.4, "59m 59s"), (7384, "2h 03m")],
)
def test_duration_reads_like_a_person_says_it(seconds, text):
    assert duration(seconds) == text
