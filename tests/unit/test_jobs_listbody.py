"""A list's JSON from items encoded once: in pieces, and deflated from pieces deflated
ahead of time (each after its neighbour), which must decode, with any decoder, to exactly
the same bytes, whatever the order and company of the pieces."""

from __future__ import annotations

import json
import zlib

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from valeria_hub.jobs.listbody import (
    Piece,
    accepts_deflate,
    adler32_combine,
    deflated_list_chunks,
    list_body,
    list_chunks,
)


def items(count: int) -> list[bytes]:
    return [json.dumps({"i": i, "pad": "x" * (i % 37), "n": None}).encode() for i in range(count)]


@pytest.mark.parametrize("count", [0, 1, 2, 50, 700])
@pytest.mark.parametrize("size", [1, 100, 4096])
def test_a_list_in_pieces_is_the_same_json_in_bounded_pieces(count, size):
    raw = items(count)
    length, chunks = list_chunks("Job", {"resource_version": "9"}, [Piece(i) for i in raw], size)
    body = b"".join(chunks)
    assert length == len(body) and body == list_body("Job", {"resource_version": "9"}, raw)
    assert json.loads(body)["items"] == [json.loads(i) for i in raw]
    bound = size + max(map(len, raw), default=0) + 128  # a piece ends after the part filling it
    assert all(len(c) < bound for c in chunks)
    assert len(chunks) >= len(body) // bound


@pytest.mark.parametrize("count", [0, 1, 2, 700])
def test_the_deflated_list_decodes_to_the_same_bytes_with_zlib_and_httpx(count):
    raw = items(count)
    pieces = [Piece(i) for i in raw]
    plain = list_body("CronJob", {"continue": None}, raw)
    length, chunks = deflated_list_chunks("CronJob", {"continue": None}, pieces, size=1000)
    stream = b"".join(chunks)
    assert length == len(stream)
    assert zlib.decompress(stream) == plain  # checks the zlib header and the Adler-32
    decoded = httpx.Response(
        200, headers={"Content-Encoding": "deflate"}, content=stream
    ).read()  # what a client's decoder makes of it
    assert decoded == plain


def test_a_list_of_job_sized_items_is_a_fraction_of_the_bytes():
    """Items the size of a Job's to_dict() shape (mostly keys and nulls): the list goes
    as well under a third of its bytes, though each item is deflated on its own."""
    job = {f"field_{k}": None for k in range(150)} | {"metadata": {"name": "x" * 20}}
    raw = [json.dumps(job | {"i": i}).encode() for i in range(200)]
    length, _ = deflated_list_chunks("Job", {}, [Piece(i) for i in raw])
    assert length < len(list_body("Job", {}, raw)) / 3


def test_a_piece_is_deflated_once():
    piece = Piece(b'{"a":1}')
    first = piece.deflated()
    assert piece.deflated()[0] is first[0]


def test_a_wrong_checksum_would_be_refused():
    """The check the test above relies on: zlib verifies the trailer."""
    stream = bytearray(b"".join(deflated_list_chunks("Job", {}, [Piece(b"{}")])[1]))
    stream[-1] ^= 1
    with pytest.raises(zlib.error, match="incorrect data check"):
        zlib.decompress(bytes(stream))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.binary(max_size=300))
def test_adler32_combine_is_the_adler32_of_the_concatenation(a, b):
    assert adler32_combine(zlib.adler32(a), zlib.adler32(b), len(b)) == zlib.adler32(a + b)


def test_adler32_combine_with_long_inputs():
    a, b = bytes(range(256)) * 300, b"\xff" * 70000  # sums past the modulus, length too
    assert adler32_combine(zlib.adler32(a), zlib.adler32(b), len(b)) == zlib.adler32(a + b)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("gzip, deflate", True),
        ("gzip, deflate, br, zstd", True),
        ("deflate;q=0.5", True),
        ("gzip", False),
        ("deflate;q=0", False),
        ("*", True),
        ("*;q=0", False),
        ("gzip, *;q=0.1", True),
        ("deflate;q=0, *", False),
        ("identity", False),
        ("deflate;q=abc", False),
        ("", False),
        (None, False),
    ],
)
def test_accept_encoding(header, expected):
    assert accepts_deflate(header) is expected


def job_like(i: int, command: str = "true") -> bytes:
    """A near copy of the others, as a person's jobs are: to_dict()-shaped keys and nulls,
    a name, a uid and a command of its own."""
    job = {f"field_{k}": None for k in range(150)}
    meta = {"name": f"job-{i:05d}", "uid": f"{i:08x}-4d2c-9a1e-{i * 7919:012x}"}
    return json.dumps(job | {"metadata": meta, "command": command}).encode()


def decoded(stream: bytes) -> bytes:
    out = zlib.decompress(stream)  # checks the zlib header and the Adler-32
    assert (
        httpx.Response(200, headers={"Content-Encoding": "deflate"}, content=stream).read() == out
    )
    return out


def test_near_copies_go_as_a_small_fraction_of_their_bytes():
    """Each item deflated after the one before it refers back into it: 200 near copies
    of a job take a few percent of their JSON, not a third."""
    raw = [job_like(i) for i in range(200)]
    length, chunks = deflated_list_chunks("Job", {}, [Piece(i) for i in raw])
    plain = list_body("Job", {}, raw)
    assert decoded(b"".join(chunks)) == plain
    assert length < len(plain) / 20


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 9), max_size=30))
def test_pieces_in_any_order_and_any_company_decode_to_the_list(order):
    """A chained piece is made after one neighbour; in another list, after another
    neighbour (or first), it must be made again, never reused wrongly."""
    pool = [Piece(job_like(i, "x" * i)) for i in range(10)]
    for items in ([pool[i] for i in order], [pool[i] for i in reversed(order)]):
        stream = b"".join(deflated_list_chunks("Job", {"v": 1}, items, size=500)[1])
        assert decoded(stream) == list_body("Job", {"v": 1}, [p.raw for p in items])


def test_items_larger_than_the_deflate_window():
    """A neighbour longer than 32 KiB: only its last 32 KiB can be referred to."""
    big = [json.dumps({"i": i, "pad": "ab" * 30000 + str(i)}).encode() for i in range(3)]
    stream = b"".join(deflated_list_chunks("Job", {}, [Piece(b) for b in big])[1])
    assert decoded(stream) == list_body("Job", {}, big)


def test_the_same_pieces_again_cost_a_lookup_and_a_changed_piece_a_new_list(monkeypatch):
    from valeria_hub.jobs import listbody

    pieces = [Piece(job_like(i)) for i in range(50)]
    first = deflated_list_chunks("Job", {"resource_version": "1"}, pieces, keep=True)[1]
    calls = []
    real = listbody.deflate_piece
    monkeypatch.setattr(listbody, "deflate_piece", lambda *a, **k: calls.append(a) or real(*a, **k))
    again = deflated_list_chunks("Job", {"resource_version": "2"}, list(pieces), keep=True)[1]
    assert len(calls) == 2  # the list's head and end, nothing per item
    assert again[1:-1] == first[1:-1] and again[1] is first[1]
    assert json.loads(decoded(b"".join(again)))["metadata"] == {"resource_version": "2"}
    changed = [*pieces[:10], Piece(job_like(10, "false")), *pieces[11:]]
    stream = b"".join(deflated_list_chunks("Job", {}, changed, keep=True)[1])
    assert decoded(stream) == list_body("Job", {}, [p.raw for p in changed])
    assert len(calls) == 2 + 2 + 2  # head, end, the new piece and the one after it
    fresh = [Piece(job_like(i)) for i in range(3)]  # made for one request: not kept
    deflated_list_chunks("Job", {}, fresh)
    assert tuple(fresh) not in listbody._memo and tuple(changed) in listbody._memo
