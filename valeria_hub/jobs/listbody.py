"""The JSON of a person's list, made from items encoded once, and sent in pieces,
deflated for clients that accept it. Pure.

A 2,000-job list is 12 MB of JSON (the ``to_dict()`` shape kbatch's client reads, nulls
and all). Joining it into one bytes object, and the socket transport's copies of that,
cost more than the list; so it goes as pieces of about :data:`CHUNK_BYTES`. And for a
client that sends ``Accept-Encoding: deflate`` (requests and httpx do, so kbatch's
client and ours) each item is also kept deflated on its own, the first time a list
needs it: the list is then those pieces one after the other, one zlib stream (RFC 1950)
a tenth of the size, with no compression work per request. Each piece is compressed
with a fresh compressor and ends with a sync flush, so no piece refers to another and
their concatenation is one valid deflate stream; the zlib trailer's Adler-32 of the
whole is combined from the pieces' own.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable
from typing import Any

CHUNK_BYTES = 64 * 1024  # under malloc's mmap threshold: pieces reuse the heap's memory
ADLER_BASE = 65521  # the largest prime below 2**16 (RFC 1950)
ZLIB_HEADER = b"\x78\x9c"  # deflate, 32 KiB window, default level, no dictionary


def encode(item: dict[str, Any]) -> bytes:
    """One item as compact JSON, done once when the item arrives."""
    return json.dumps(item, separators=(",", ":")).encode()


def deflate_piece(data: bytes, *, last: bool = False) -> bytes:
    """``data`` as raw deflate blocks that refer to nothing before them, ending on a
    byte boundary (sync flush), or with the final block when ``last``."""
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)


def adler32_combine(first: int, second: int, second_length: int) -> int:
    """Adler-32 of A+B from Adler-32 of A, of B and the length of B (RFC 1950's sums:
    s1 = 1 + the bytes, s2 = the sum of the s1 after each byte, both mod 65521)."""
    n = second_length % ADLER_BASE
    a1, b1 = first & 0xFFFF, first >> 16
    a2, b2 = second & 0xFFFF, second >> 16
    a = (a1 + a2 - 1) % ADLER_BASE
    b = (b1 + b2 + n * a1 - n) % ADLER_BASE
    return (b << 16) | a


class Piece:
    """An item's JSON, and the same deflated with its Adler-32 once a list asks."""

    __slots__ = ("raw", "_deflated", "_adler")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self._deflated: bytes | None = None
        self._adler = 0

    @classmethod
    def of(cls, item: dict[str, Any]) -> Piece:
        return cls(encode(item))

    def deflated(self) -> tuple[bytes, int]:
        if self._deflated is None:
            self._deflated, self._adler = deflate_piece(self.raw), zlib.adler32(self.raw)
        return self._deflated, self._adler


COMMA = Piece(b",")


def head(kind: str, metadata: dict[str, Any]) -> bytes:
    """The list's JSON up to its first item."""
    fields = {"api_version": "batch/v1", "kind": f"{kind}List", "metadata": metadata}
    return json.dumps(fields, separators=(",", ":"))[:-1].encode() + b',"items":['


def grouped(parts: Iterable[bytes], size: int) -> list[bytes]:
    """``parts`` joined into pieces of about ``size`` bytes (a piece ends after the part
    that fills it)."""
    chunks: list[bytes] = []
    piece: list[bytes] = []
    filled = 0
    for part in parts:
        piece.append(part)
        filled += len(part)
        if filled >= size:
            chunks.append(b"".join(piece))
            piece, filled = [], 0
    if piece:
        chunks.append(b"".join(piece))
    return chunks


def list_chunks(
    kind: str, metadata: dict[str, Any], items: list[Piece], size: int = CHUNK_BYTES
) -> tuple[int, list[bytes]]:
    """A JobList or CronJobList (the ``to_dict()`` shape) as its length and pieces."""

    def parts() -> Iterable[bytes]:
        yield head(kind, metadata)
        for i, item in enumerate(items):
            if i:
                yield b","
            yield item.raw
        yield b"]}"

    chunks = grouped(parts(), size)
    return sum(len(c) for c in chunks), chunks


def deflated_list_chunks(
    kind: str, metadata: dict[str, Any], items: list[Piece], size: int = CHUNK_BYTES
) -> tuple[int, list[bytes]]:
    """The same list as one zlib stream (``Content-Encoding: deflate``): its length and
    pieces."""
    first = head(kind, metadata)
    adler = zlib.adler32(first)
    parts = [ZLIB_HEADER, deflate_piece(first)]
    for i, item in enumerate(items):
        for piece in (COMMA, item) if i else (item,):
            data, checksum = piece.deflated()
            parts.append(data)
            adler = adler32_combine(adler, checksum, len(piece.raw))
    parts.append(deflate_piece(b"]}", last=True))
    adler = adler32_combine(adler, zlib.adler32(b"]}"), 2)
    parts.append(adler.to_bytes(4, "big"))
    chunks = grouped(parts, size)
    return sum(len(c) for c in chunks), chunks


def list_body(kind: str, metadata: dict[str, Any], items: list[bytes]) -> bytes:
    """The list of :func:`list_chunks` in one piece, from encoded items."""
    return b"".join(list_chunks(kind, metadata, [Piece(i) for i in items])[1])


def accepts_deflate(accept_encoding: str | None) -> bool:
    """Whether an ``Accept-Encoding`` header accepts ``deflate`` (by name or ``*``,
    with a q-value above 0; RFC 9110, 12.5.3)."""
    if not accept_encoding:
        return False
    weights: dict[str, float] = {}
    for entry in accept_encoding.split(","):
        coding, _, params = entry.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        weights[coding.strip().lower()] = q
    return weights.get("deflate", weights.get("*", 0.0)) > 0
