"""Streaming a JSON document's top-level arrays gives exactly what ``json.loads`` of the whole file gives."""

from __future__ import annotations

import io
import json
import random

import pytest

from preprocessing.readers import json_stream
from preprocessing.readers.files import SourceError
from preprocessing.readers.json_stream import stream_object


def _stream(data: bytes, keys=("data",)) -> tuple[dict, dict[str, list]]:
    got: dict[str, list] = {key: [] for key in keys}
    members, streamed = stream_object(io.BytesIO(data), {key: got[key].append for key in keys}, "test file", "x.json")
    return members, {key: got[key] for key in streamed}


def _value(rng: random.Random, depth: int = 0):
    kind = rng.random()
    if kind < 0.3:
        return rng.uniform(-1e6, 1e6) * 10 ** rng.randint(-30, 30)
    if kind < 0.45:
        return rng.randint(-(10**20), 10**20)
    if kind < 0.5:
        return rng.choice([float("nan"), float("inf"), -float("inf"), -0.0, 5e-324, 1.7976931348623157e308])
    if kind < 0.6:
        return "".join(rng.choice('ab\\"\n\u00e9\u4e2d\U0001f600 ') for _ in range(rng.randint(0, 40)))
    if kind < 0.75 and depth < 3:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 6))]
    if kind < 0.9 and depth < 3:
        return {f"k{i}": _value(rng, depth + 1) for i in range(rng.randint(0, 5))}
    return rng.choice([True, False, None])


@pytest.mark.parametrize("block", [1, 7, 64, 1 << 22])
def test_elements_and_members_equal_json_loads(monkeypatch, block):
    monkeypatch.setattr(json_stream, "BLOCK_CHARS", block)
    rng = random.Random(block)
    for _ in range(40):
        document = {"ver": _value(rng), "data": [_value(rng) for _ in range(rng.randint(0, 30))], "meta": _value(rng)}
        text = json.dumps(document, indent=rng.choice([None, 1]), ensure_ascii=rng.random() < 0.5)
        whole = json.loads(text)
        members, streamed = _stream(text.encode())
        # json.dumps shows every difference: NaN, -0.0, the exact float (its repr round-trips)
        assert json.dumps(streamed["data"]) == json.dumps(whole["data"])
        assert json.dumps(members) == json.dumps({k: v for k, v in whole.items() if k != "data"})


def test_encodings_and_top_level_values():
    assert _stream('\ufeff{"data": [1]}'.encode())[1] == {"data": [1]}  # a UTF-8 byte order mark, as json.loads
    assert _stream('{"data": ["\u00e9"]}'.encode("utf-16"))[1] == {"data": ["\u00e9"]}
    assert _stream(b'{"data": {"not": "a list"}}') == ({"data": {"not": "a list"}}, {})
    assert _stream(b"[1, 2]") == ({"": [1, 2]}, {})
    assert _stream(b'{"data": [], "x": 1}') == ({"x": 1}, {"data": []})


@pytest.mark.parametrize(
    "data",
    [b"", b"{", b'{"data": [1, 2', b'{"data": [1, 2,]}', b'{"data": [1 2]}', b'{"data": [1]} x', b'{"data": [tru]}'],
)
def test_what_json_loads_refuses_is_a_source_error(data):
    with pytest.raises(ValueError):
        json.loads(data)
    with pytest.raises(SourceError, match=r"test file x\.json is not valid JSON .*character \d+.*truncated or damaged"):
        _stream(data)


def test_a_damaged_element_fails_without_reading_the_rest(monkeypatch):
    monkeypatch.setattr(json_stream, "BLOCK_CHARS", 64)
    reads = []

    class Counted(io.BytesIO):
        def read(self, size=-1):
            reads.append(size)
            return super().read(size)

    data = b'{"data": [1, 2, x, ' + b"3, " * 100_000 + b"4]}"
    with pytest.raises(SourceError, match="character 16"):
        stream_object(Counted(data), {"data": lambda item: None}, "test file", "x.json")
    assert len(reads) < 100  # 64 characters at a time: it stopped within the first few thousand of 300,000


def test_a_streamed_array_given_twice_is_refused():
    with pytest.raises(SourceError, match="'data' appears twice"):
        _stream(b'{"data": [1], "data": [2]}')
