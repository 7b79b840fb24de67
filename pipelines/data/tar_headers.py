"""A quick look at a tar archive's headers: whether it holds plain files only, as `pare preprocess` writes them.

Reading a shard checks, before its members are read, that no member is sparse and none declares more bytes
than the shard holds (:func:`~pipelines.data.reading.read_shard`). Walking the headers with :mod:`tarfile`
costs about as much as reading the samples themselves; this walk reads the same 512-byte headers and answers
only the common case. It returns True when every header up to the end-of-archive block is a valid ustar
header (its checksum as :mod:`tarfile` computes it) of a regular file (type ``0``) whose data lies inside the
archive. Anything else (a sparse, linked or long-named member, an extension header, a bad checksum, a member
cut short, no end-of-archive block) returns False, and the caller walks the archive with :mod:`tarfile` as
before, which decides.
"""

from __future__ import annotations

BLOCK = 512
_REGULAR = ord("0")
_BASE256 = (0o200, 0o377)


def _octal(field: bytes) -> int | None:
    """A numeric header field as :mod:`tarfile` reads it (octal up to the first NUL); None where it would not."""
    if field[0] in _BASE256:
        return None
    end = field.find(b"\0")
    text = (field if end < 0 else field[:end]).strip()
    try:
        return int(text or b"0", 8)
    except ValueError:
        return None


def plain_members(data: bytes | memoryview) -> bool:
    """Whether ``data`` is a tar archive of regular files only, each inside ``data``, ended by a zero block."""
    view = memoryview(data)
    offset, end = 0, len(view)
    while offset + BLOCK <= end:
        header = bytes(view[offset : offset + BLOCK])
        if not any(header):
            return offset > 0  # the end-of-archive block; at offset 0 the archive is empty, which tarfile refuses
        if header[156] != _REGULAR:
            return False
        stored, size = _octal(header[148:156]), _octal(header[124:136])
        if size is None or stored is None or stored != 256 + sum(header) - sum(header[148:156]):
            return False
        offset += BLOCK + -(-size // BLOCK) * BLOCK
        if offset > end:
            return False
    return False
