"""The JSON of a person's list, made from items encoded once, and sent in pieces,
deflated for clients that accept it. Pure.

A 2,000-job list is 12 MB of JSON (the ``to_dict()`` shape kbatch's client reads, nulls
and all). Joining it into one bytes object, and the socket transport's copies of that,
cost more than the list; so it goes as pieces of about :data:`CHUNK_BYTES`.

For a client that sends ``Accept-Encoding: deflate`` (requests and httpx do, so kbatch's
client and ours) the list is one zlib stream (RFC 1950) made of pieces deflated ahead of
time, so that no list compresses anything. Deflating each item on its own gave a third
of the bytes, and inflating 2,000 separately coded items cost the client more than the
whole transfer; a person's jobs are near copies of one another, so each item is instead
deflated with the item before it in the list as its dictionary (:meth:`Piece.chained`):
its blocks may refer back into the previous item, which a decoder has just written, and
an item costs about 120 bytes instead of 2,000. A chained piece is kept with the bytes
it was made after, and made again only when its neighbour changes. Each piece ends with
a sync flush, so the pieces concatenate into one valid deflate stream; the zlib
trailer's Adler-32 of the whole is combined from the pieces' own. The deflated items of
a cached list are kept for the next request of the same items (:func:`deflated_items`).

Our own clients (``valeria-hub jobs list``, the web page) ask for ``?view=summary``: each
item cut down by :func:`summary` to what their tables show: for 2,000 jobs 0.65 MB of
JSON instead of 12.6 MB, which the client parses in about 10 ms instead of 300. Its
pieces are made, kept and deflated exactly as the full items' are.
"""

from __future__ import annotations

import json
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any, Literal, NamedTuple

CHUNK_BYTES = 64 * 1024  # under malloc's mmap threshold: pieces reuse the heap's memory
ADLER_BASE = 65521  # the largest prime below 2**16 (RFC 1950)
ZLIB_HEADER = b"\x78\x9c"  # deflate, 32 KiB window, default level, no dictionary
WINDOW = 32 * 1024  # how far back a deflate block may refer
MEMO_LISTS = 16  # deflated item runs of the list cache kept for lists asked again

ListView = Literal["full", "summary"]
OBJECT_META = ("name", "namespace", "uid", "creation_timestamp")
JOB_STATUS = ("active", "succeeded", "failed", "start_time", "completion_time")
CONDITION = ("type", "status", "reason", "message", "last_transition_time")
CRONJOB_SPEC = ("schedule", "suspend")
REFERENCE = ("name", "namespace", "uid")


def _pick(obj: dict[str, Any] | None, keys: tuple[str, ...]) -> dict[str, Any]:
    """``keys`` of ``obj``, each present (None when absent), as to_dict() has them."""
    obj = obj or {}
    return {k: obj.get(k) for k in keys}


def _each(values: list[dict[str, Any]] | None, keys: tuple[str, ...]) -> list[Any] | None:
    return None if values is None else [_pick(v, keys) for v in values]


def summary(kind: str, item: dict[str, Any]) -> dict[str, Any]:
    """An item (to_dict() shape) as our clients' lists show it, under the same keys, so
    the same readers work on either: a Job's name, times, counts and conditions (the
    web page reads ``Complete``/``Failed``), a CronJob's schedule, suspension, active
    runs (their references, which the tables count) and last run. Everything else
    (labels, annotations, the spec's containers...) is in ``GET /jobs/NAME``. Pure."""
    status = item.get("status") or {}
    out: dict[str, Any] = {
        "api_version": item.get("api_version"),
        "kind": item.get("kind"),
        "metadata": _pick(item.get("metadata"), OBJECT_META),
    }
    if kind == "CronJob":
        out["spec"] = _pick(item.get("spec"), CRONJOB_SPEC)
        out["status"] = {
            "active": _each(status.get("active"), REFERENCE),
            "last_schedule_time": status.get("last_schedule_time"),
        }
    else:
        out["status"] = {
            **_pick(status, JOB_STATUS),
            "conditions": _each(status.get("conditions"), CONDITION),
        }
    return out


def encode(item: dict[str, Any]) -> bytes:
    """One item as compact JSON, done once when the item arrives."""
    return json.dumps(item, separators=(",", ":")).encode()


def deflate_piece(
    data: bytes, *, last: bool = False, after: bytes = b"", strategy: int = zlib.Z_DEFAULT_STRATEGY
) -> bytes:
    """``data`` as raw deflate blocks ending on a byte boundary (sync flush), or with the
    final block when ``last``. They refer to nothing before them, or, given ``after``,
    to the bytes a decoder wrote just before them, which must be ``after``."""
    options = {"zdict": after[-WINDOW:]} if after else {}
    c = zlib.compressobj(6, zlib.DEFLATED, -15, 8, strategy, **options)
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
    """An item's JSON; deflated on its own, and deflated after its neighbour in a list
    (``,`` and the JSON), each made once and kept."""

    __slots__ = ("raw", "_deflated", "_adler", "_after", "_chained", "_chained_adler")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self._deflated: bytes | None = None
        self._adler = 0
        self._after: bytes | None = None
        self._chained = b""
        self._chained_adler = 0

    @classmethod
    def of(cls, item: dict[str, Any]) -> Piece:
        return cls(encode(item))

    @classmethod
    def summary_of(cls, kind: str, item: dict[str, Any]) -> Piece:
        """The piece of the item's :func:`summary`."""
        return cls(encode(summary(kind, item)))

    def deflated(self) -> tuple[bytes, int]:
        """The JSON as deflate blocks of its own, with its Adler-32: a list's first item."""
        if self._deflated is None:
            self._deflated, self._adler = deflate_piece(self.raw), zlib.adler32(self.raw)
        return self._deflated, self._adler

    def chained(self, before: bytes) -> tuple[bytes, int]:
        """``,`` and the JSON deflated with ``before`` (the previous item's JSON) as the
        dictionary, with its Adler-32; made again only when ``before`` changes. Fixed
        Huffman codes: these blocks are nearly all back-references, and a decoder then
        builds no code tables for each of 2,000 blocks."""
        if self._after is not before and self._after != before:
            unit = b"," + self.raw
            self._chained = deflate_piece(unit, after=before, strategy=zlib.Z_FIXED)
            self._chained_adler = zlib.adler32(unit)
            self._after = before
        return self._chained, self._chained_adler


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
    kind: str, metadata: dict[str, Any], items: Sequence[Piece], size: int = CHUNK_BYTES
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


class DeflatedItems(NamedTuple):
    """A list's items as deflate blocks: pieces of them, the Adler-32 and length of the
    JSON they decode to."""

    chunks: list[bytes]
    adler: int
    length: int


_memo: OrderedDict[tuple[Piece, ...], DeflatedItems] = OrderedDict()


def deflated_items(
    items: Sequence[Piece], size: int = CHUNK_BYTES, *, keep: bool = False
) -> DeflatedItems:
    """The items of a list, ``,``-separated, deflated (each after the one before it).

    With ``keep`` (pieces a cache holds anyway), kept for the :data:`MEMO_LISTS` latest
    lists by the identity of their pieces: a list asked again unchanged (the cache keeps
    a changed item as a new piece) costs a lookup, not a pass over 2,000 items. Pieces
    made for one request are not kept: the memo would hold their JSON."""
    key = tuple(items)
    known = _memo.get(key) if keep else None
    if known is not None:
        _memo.move_to_end(key)
        return known
    parts: list[bytes] = []
    adler, length, before = 1, 0, b""
    for i, piece in enumerate(key):
        data, checksum = piece.chained(before) if i else piece.deflated()
        parts.append(data)
        unit = len(piece.raw) + (1 if i else 0)
        adler = adler32_combine(adler, checksum, unit)
        length += unit
        before = piece.raw
    known = DeflatedItems(grouped(parts, size), adler, length)
    if keep:
        _memo[key] = known
        while len(_memo) > MEMO_LISTS:
            _memo.popitem(last=False)
    return known


def deflated_list_chunks(
    kind: str,
    metadata: dict[str, Any],
    items: Sequence[Piece],
    size: int = CHUNK_BYTES,
    *,
    keep: bool = False,
) -> tuple[int, list[bytes]]:
    """The same list as one zlib stream (``Content-Encoding: deflate``): its length and
    pieces (``keep``: see :func:`deflated_items`)."""
    first = head(kind, metadata)
    body = deflated_items(items, size, keep=keep)
    adler = adler32_combine(zlib.adler32(first), body.adler, body.length)
    adler = adler32_combine(adler, zlib.adler32(b"]}"), 2)
    start = ZLIB_HEADER + deflate_piece(first)
    end = deflate_piece(b"]}", last=True) + adler.to_bytes(4, "big")
    chunks = [start, *body.chunks, end]
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
