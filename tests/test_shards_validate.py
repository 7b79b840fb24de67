"""`pare shards validate` on the session's shards: a split folder itself, and the folders above it."""

from __future__ import annotations

import json

import pytest

from pipelines.cli import main


@pytest.mark.parametrize("level", ["3dpw/test", "3dpw", "."])
def test_intact_shards_validate_at_every_level(training_shards, level, capsys):
    assert main(["shards", "validate", str(training_shards / level), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "missing" not in out and "problem" not in out
    assert "samples checked: OK" in out


def test_a_manifest_naming_shards_outside_its_folder_is_refused(tmp_path):
    from pare_model.errors import UserFacingError
    from pipelines.data.shard_folders import resolve_folders

    (tmp_path / "outside.tar").write_bytes(b"")
    split = tmp_path / "3dpw" / "test"
    split.mkdir(parents=True)
    shard = {"name": "../../outside.tar", "samples": 1, "bytes": 0, "sha256": "", "first_key": "a", "last_key": "a"}
    (split / "manifest.json").write_text(json.dumps({"format": "pare-shards", "shards": [shard]}))
    with pytest.raises(UserFacingError, match=r"'\.\./\.\./outside\.tar' is not a shard file name"):
        resolve_folders(str(split))
    assert main(["shards", "validate", str(split), "--quiet"]) == 2
