"""Hostile zip archives, written byte by byte so their headers can lie: the unit tests of
the upload checks and the end-to-end code upload tests share them."""

from __future__ import annotations

import io
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass

MiB = 1024 * 1024


@dataclass(frozen=True)
class Member:
    name: str
    payload: bytes  # as stored in the archive (already compressed when method is 8)
    method: int = zipfile.ZIP_STORED
    file_size: int | None = None  # what the headers claim; default: the stored size
    crc: int | None = None
    mode: int = stat.S_IFREG | 0o644  # unix mode, the high half of external_attr
    flags: int = 0x800  # utf-8 names


def craft(members: list[Member], *, central_names: list[str] | None = None) -> bytes:
    """A zip whose local and central headers say exactly what each Member says;
    ``central_names`` overrides the central directory's names (local ones stay)."""
    out = io.BytesIO()
    central = []
    for i, m in enumerate(members):
        size = len(m.payload) if m.file_size is None else m.file_size
        crc = zlib.crc32(m.payload) if m.crc is None else m.crc
        name = m.name.encode()
        offset = out.tell()
        out.write(struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, m.flags, m.method, 0, 0,
                              crc, len(m.payload), size, len(name), 0))  # fmt: skip
        out.write(name + m.payload)
        cname = (central_names[i] if central_names else m.name).encode()
        central.append(struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 0x031E, 20, m.flags,
                                   m.method, 0, 0, crc, len(m.payload), size, len(cname), 0, 0,
                                   0, 0, m.mode << 16, offset) + cname)  # fmt: skip
    start = out.tell()
    directory = b"".join(central)
    out.write(directory)
    out.write(struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(members), len(members),
                          len(directory), start, 0))  # fmt: skip
    return out.getvalue()


def deflate_zeros(n: int) -> bytes:
    """Raw deflate of ``n`` zero bytes (a multiple of 1 MiB), made in milliseconds: one
    fully flushed MiB repeated, then an empty final block."""
    assert n % MiB == 0
    c = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = c.compress(b"\0" * MiB) + c.flush(zlib.Z_FULL_FLUSH)
    return block * (n // MiB) + b"\x03\x00"


def zeros_crc(n: int) -> int:
    crc, chunk = 0, b"\0" * MiB
    for _ in range(n // MiB):
        crc = zlib.crc32(chunk, crc)
    return crc


def liar_bomb(n: int = 400 * MiB, declared: int = 465) -> bytes:
    """One deflated member that declares ``declared`` bytes and inflates to ``n``."""
    return craft([Member("data.bin", deflate_zeros(n), zipfile.ZIP_DEFLATED, declared, 0)])


def honest_bomb(n: int = 400 * MiB) -> bytes:
    """One deflated member of ``n`` zero bytes that says so (about n/1000 bytes)."""
    payload = deflate_zeros(n)
    return craft([Member("data.bin", payload, zipfile.ZIP_DEFLATED, n, zeros_crc(n))])


def zipped(files: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    """An ordinary archive, as zipfile writes it."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


def bzip2_bomb(n: int = 400 * MiB) -> bytes:
    """A bzip2 member (method 12): a few hundred bytes that take seconds to inflate."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_BZIP2) as z:
        with z.open("data.bin", "w", force_zip64=True) as f:
            for _ in range(n // MiB):
                f.write(b"\0" * MiB)
    return buf.getvalue()
