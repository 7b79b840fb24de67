"""Small files that declare huge allocations, for the input-limit tests (tests/test_input_bombs.py).

Each is a few megabytes at most and made in well under a second: a deflated zip member of
gigabytes of zeros is written as one compressed megabyte repeated (deflate blocks after a full
flush do not depend on what came before), and a GNU sparse tar member stores one block of a
4 GB file. The CRC of a bomb member is not computed (it would take seconds): a reader under
test must refuse the member before reading it, and one without the limits allocates the whole
member before it could check the CRC.
"""

from __future__ import annotations

import io
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

BOMB_BYTES = 4_000_000_000
"""What each bomb declares: more than the test's address-space headroom, under zip's 4 GiB without zip64."""
_CHUNK = 1 << 20


def deflated_zeros(prefix: bytes, total: int) -> bytes:
    """A raw deflate stream of ``prefix`` then zeros, ``total`` bytes in all."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = compressor.compress(prefix) + compressor.flush(zlib.Z_FULL_FLUSH)
    zeros = bytes(_CHUNK)
    block = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert block == compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)  # the same bytes each time
    count, rest = divmod(total - len(prefix), _CHUNK)
    return head + block * count + compressor.compress(bytes(rest)) + compressor.flush()


def write_zip(path: Path, members: list[tuple[str, bytes, int | None]]) -> Path:
    """A zip of ``(name, data, declared size)`` members: ``declared`` None stores ``data`` as it is; otherwise
    ``data`` is a raw deflate stream of ``declared`` bytes (CRC left 0)."""
    out, central = io.BytesIO(), []
    for name, data, declared in members:
        encoded = name.encode()
        method, crc, size = (0, zlib.crc32(data), len(data)) if declared is None else (8, 0, declared)
        offset = out.tell()
        out.write(
            struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, crc, len(data), size, len(encoded), 0)
        )
        out.write(encoded + data)
        central.append(
            struct.pack(
                "<IHHHHHHIIIHHHHHII",
                0x02014B50,
                20,
                20,
                0,
                method,
                0,
                0x21,
                crc,
                len(data),
                size,
                len(encoded),
                0,
                0,
                0,
                0,
                0,
                offset,
            )  # fmt: skip
            + encoded
        )
    start = out.tell()
    out.write(b"".join(central))
    out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(central), len(central), out.tell() - start, start, 0))
    path.write_bytes(out.getvalue())
    return path


def npy_bomb(name: str, shape: tuple[int, ...], dtype: str) -> tuple[str, bytes, int]:
    """A deflated ``.npy`` member declaring an array of ``shape`` and ``dtype`` (all zeros), for :func:`write_zip`."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": dtype, "fortran_order": False, "shape": shape})
    declared = header.tell() + int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    return f"{name}.npy", deflated_zeros(header.getvalue(), declared), declared


def npy_member(name: str, array: np.ndarray) -> tuple[str, bytes, None]:
    """A stored ``.npy`` member of ``array``, for :func:`write_zip`."""
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return f"{name}.npy", buffer.getvalue(), None


def torch_record_bomb(path: Path) -> Path:
    """A torch file of one float tensor whose ``data.pkl`` declares 1e9 floats over a deflated 4 GB record."""
    import torch

    plain = io.BytesIO()
    torch.save({"w": torch.zeros(4)}, plain)
    members: list[tuple[str, bytes, int | None]] = []
    with zipfile.ZipFile(plain) as archive:
        for info in archive.infolist():
            data = archive.read(info)
            if info.filename.endswith("/data.pkl"):
                numel = b"X\x03\x00\x00\x00cpuq\x06K\x04t"  # the storage's location and its 4 elements
                assert numel in data
                data = data.replace(numel, numel[:-3] + b"J" + struct.pack("<i", BOMB_BYTES // 4) + b"t")
            if info.filename.endswith("/data/0"):
                members.append((info.filename, deflated_zeros(b"", BOMB_BYTES), BOMB_BYTES))
                continue
            members.append((info.filename, data, None))
    return write_zip(path, members)


def billion_laughs(depth: int = 60) -> list:
    """``x = [1]``, then ``depth`` times ``x = [x, x]``: one list per level, 2**depth leaves as a tree."""
    value: list = [1]
    for _ in range(depth):
        value = [value, value]
    return value


def yaml_alias_bomb() -> str:
    """Nine levels of YAML anchors, each a list of nine aliases of the one before: 9**9 strings (~560 bytes)."""
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
    return "\n".join(lines) + "\n"


def sparse_member(name: str, declared: int) -> bytes:
    """A GNU sparse tar member (header and data) of ``declared`` bytes that stores only its last 512."""
    info = tarfile.TarInfo(name)
    info.size = 512
    header = bytearray(info.tobuf(format=tarfile.GNU_FORMAT))
    header[156:157] = tarfile.GNUTYPE_SPARSE
    header[386:410] = tarfile.itn(declared - 512, 12, tarfile.GNU_FORMAT) + tarfile.itn(512, 12, tarfile.GNU_FORMAT)
    header[483:495] = tarfile.itn(declared, 12, tarfile.GNU_FORMAT)
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header) + b"x" * 512


def with_member_appended(shard: bytes, member: bytes) -> bytes:
    """The tar ``shard`` with ``member`` (header and data, whole blocks) added after its last member."""
    with tarfile.open(fileobj=io.BytesIO(shard), mode="r:") as tar:
        tar.getmembers()
        end = tar.offset
    archive = shard[:end] + member + bytes(1024)
    return archive + bytes(-len(archive) % tarfile.RECORDSIZE)


def png_declaring(width: int, height: int) -> bytes:
    """A PNG of a few hundred bytes whose header declares ``width`` x ``height`` RGB pixels (its data: one row)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(bytes(1 + 3 * width))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
