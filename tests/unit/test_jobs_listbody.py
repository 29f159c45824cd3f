"""A list's JSON from items encoded once: in pieces, and deflated from pieces deflated
one by one, which must decode, with any decoder, to exactly the same bytes."""

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
