"""Atomic writes of :class:`pipelines.io.storage.Storage` on a local folder, and shards streamed through them.

(The object-store path, an upload under the final name, is in ``tests/test_preprocess_s3.py``.)
"""

from __future__ import annotations

import hashlib

import pytest

from pipelines.io.storage import Storage
from preprocessing.samples.encode import add_members, open_tar, read_tar_members, tar_bytes

MEMBERS = [(f"key{k}.{suffix}", bytes([k]) * (700 * k + 13)) for k in range(3) for suffix in ("jpg", "json")]


def test_a_file_appears_only_when_committed(tmp_path):
    storage = Storage(str(tmp_path))
    assert not storage.object_store
    file = storage.open_atomic("a/b.bin")
    file.write(b"abc")
    file.write(b"de")
    assert file.tell() == 5 and not (tmp_path / "a/b.bin").exists()
    file.commit()
    assert (tmp_path / "a/b.bin").read_bytes() == b"abcde"
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b.bin"]  # the temporary name is gone


def test_a_discarded_or_failed_write_leaves_nothing(tmp_path):
    storage = Storage(str(tmp_path))
    storage.write_bytes("old.bin", b"old")
    with storage.open_atomic("old.bin") as file:
        file.write(b"new")
        file.discard()
    with pytest.raises(RuntimeError), storage.open_atomic("failed.bin") as file:
        file.write(b"half")
        raise RuntimeError("the writer failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.bin"]
    assert (tmp_path / "old.bin").read_bytes() == b"old"


def test_a_tar_streamed_in_pieces_is_the_tar_of_all_members(tmp_path):
    """Shards are written batch by batch straight into storage: the bytes must equal ``tar_bytes`` of the
    same members, which every earlier shard and the manifest's sha256 were made with."""
    storage = Storage(str(tmp_path))
    with storage.open_atomic("shard-000000.tar") as file, open_tar(file) as tar:
        add_members(tar, MEMBERS[:2])
        add_members(tar, MEMBERS[2:])
    data = (tmp_path / "shard-000000.tar").read_bytes()
    assert data == tar_bytes(MEMBERS)
    assert list(read_tar_members(data)) == MEMBERS
    assert hashlib.sha256(data).hexdigest() == hashlib.sha256(tar_bytes(MEMBERS)).hexdigest()
