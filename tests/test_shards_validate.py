"""`pare shards validate` on the session's shards: a split folder itself, and the folders above it."""

from __future__ import annotations

import pytest

from pipelines.cli import main


@pytest.mark.parametrize("level", ["3dpw/test", "3dpw", "."])
def test_intact_shards_validate_at_every_level(training_shards, level, capsys):
    assert main(["shards", "validate", str(training_shards / level), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "missing" not in out and "problem" not in out
    assert "samples checked: OK" in out
