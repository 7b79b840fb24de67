"""The quick header walk that lets a plain shard skip the tarfile walk (pipelines/data/tar_headers.py).

It may only say "plain" where Python's tarfile, walking the same bytes, finds regular files only, each
inside the archive, and no error; everything else must go to the tarfile walk, which decides as before.
"""

from __future__ import annotations

import io
import tarfile

import pytest

from pipelines.data.reading import ShardContentError, ShardReadError, read_shard
from pipelines.data.tar_headers import plain_members
from preprocessing.samples.encode import MEMBER_SUFFIXES as MEMBERS
from preprocessing.samples.encode import tar_bytes
from tests.input_bombs import sparse_member, with_member_appended


def archive(members: list[tuple[str, bytes]], fmt: int = tarfile.USTAR_FORMAT, **info) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as tar:
        for name, payload in members:
            member = tarfile.TarInfo(name)
            member.size = len(payload)
            for key, value in info.items():
                setattr(member, key, value)
            tar.addfile(member, io.BytesIO(payload))
    return buffer.getvalue()


SAMPLES = [(f"ds_train_{k}.{ext}", bytes(range(256)) * (k + 1) + b"x" * k) for k in range(5) for ext in ("jpg", "json")]


def tarfile_verdict(data: bytes) -> list[tuple[str, int, bool]]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        return [(m.name, m.size, m.isreg()) for m in tar]


def test_a_shard_as_pare_preprocess_writes_it_is_plain_and_tarfile_agrees(tmp_path):
    data = tar_bytes(
        (f"coco-eft_train_{k:06d}.{ext}", b"\xff\xd8" + bytes(700 * k + len(ext))) for k in range(4) for ext in MEMBERS
    )
    assert plain_members(data)
    members = tarfile_verdict(data)
    assert len(members) == 12 and all(regular and size <= len(data) for _, size, regular in members)
    assert read_shard(io.BytesIO(data), "mem://shard.tar") == data


def test_a_shard_written_by_webdatasets_own_writer_goes_to_the_tarfile_walk_and_reads():
    import webdataset as wds

    buffer = io.BytesIO()
    with wds.TarWriter(buffer) as sink:  # pax headers (a float mtime) before every member
        sink.write({"__key__": "coco-eft_train_000000", "jpg": b"\xff\xd8", "json": b"{}"})
    data = buffer.getvalue()
    assert not plain_members(data)
    assert read_shard(io.BytesIO(data), "mem://wds.tar") == data


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_plain_archives_in_every_format_tarfile_writes(fmt):
    data = archive(SAMPLES, fmt)
    assert plain_members(data)
    assert [name for name, _, _ in tarfile_verdict(data)] == [name for name, _ in SAMPLES]


@pytest.mark.parametrize(
    "data, why",
    [
        (archive([("a" * 120 + ".jpg", b"1234")], tarfile.PAX_FORMAT), "a pax extended header (long name)"),
        (archive([("a" * 120 + ".jpg", b"1234")], tarfile.GNU_FORMAT), "a GNU long-name header"),
        (archive([("dir", b"")], type=tarfile.DIRTYPE), "a directory"),
        (archive([("link", b"")], type=tarfile.SYMTYPE, linkname="/etc/passwd"), "a symbolic link"),
        (with_member_appended(archive(SAMPLES), sparse_member("zzz.jpg", 4 << 30)), "a sparse member"),
        (archive(SAMPLES)[: 512 * 7 + 100], "cut short inside a member"),
        (archive(SAMPLES)[:1024], "cut short after a header, no end block"),
        (b"\0" * 10240, "empty"),
        (b"not a tar at all" * 64, "not a tar"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_anything_else_goes_to_the_tarfile_walk(data, why):
    assert not plain_members(data), why


def test_a_flipped_byte_in_a_header_is_seen_by_its_checksum():
    original = archive(SAMPLES)
    with tarfile.open(fileobj=io.BytesIO(original), mode="r:") as tar:
        third_header = tar.getmembers()[2].offset
    data = bytearray(original)
    data[third_header + 10] ^= 0x01  # inside the name of a later header
    assert not plain_members(bytes(data))
    size_field = bytearray(archive(SAMPLES))
    size_field[124 + 5] = ord("7")  # the first member now declares a size the checksum does not cover
    assert not plain_members(bytes(size_field))


def test_read_shard_still_refuses_what_it_refused():
    sparse = with_member_appended(archive(SAMPLES), sparse_member("zzz.jpg", 4 << 30))
    with pytest.raises(ShardContentError, match="sparse"):
        read_shard(io.BytesIO(sparse), "mem://sparse.tar")
    with pytest.raises(ShardReadError):
        read_shard(io.BytesIO(b"not a tar at all" * 64), "mem://garbage.tar")
    cut = archive(SAMPLES)[: 512 * 7 + 100]
    assert read_shard(io.BytesIO(cut), "mem://cut.tar") == cut  # returned as it is; the reader counts the tail
