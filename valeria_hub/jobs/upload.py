"""Uploaded code: a zip archive sent base64-encoded, checked here, unpacked in the pod.

Two body shapes are accepted for ``code``: a base64 string, or the ConfigMap dict that
the kbatch client sends (``binary_data.code`` / ``binaryData.code``, base64). The
archive must be a readable zip whose members stay inside the target directory. Pure.
"""

from __future__ import annotations

import base64
import binascii
import io
import posixpath
import zipfile
from typing import Any

# Run by the init container as ``python3 -c UNPACK_SCRIPT ZIP DEST``; it refuses members
# that would land outside DEST (absolute paths, '..', symlinks are written as files).
UNPACK_SCRIPT = """\
import os, sys, zipfile
src, dest = sys.argv[1], os.path.realpath(sys.argv[2])
with zipfile.ZipFile(src) as z:
    for m in z.infolist():
        target = os.path.realpath(os.path.join(dest, m.filename))
        if target != dest and not target.startswith(dest + os.sep):
            sys.exit("refusing archive member outside the code directory: %r" % m.filename)
    z.extractall(dest)
print("unpacked %d files into %s" % (len(z.infolist()), dest))
"""


class UploadError(ValueError):
    """An upload that is refused; ``status`` is 413 for size, 422 otherwise."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def encoded_payload(code: Any) -> str | None:
    """The base64 text from either accepted shape; None when there is no code."""
    if code is None or code == "":
        return None
    if isinstance(code, str):
        return code
    if isinstance(code, dict):
        data = code.get("binaryData") or code.get("binary_data") or {}
        if isinstance(data, dict) and isinstance(data.get("code"), str):
            return data["code"]
        raise UploadError("code: a ConfigMap-shaped upload needs binaryData.code (base64)")
    raise UploadError("code: must be a base64 string (a zip archive) or null")


def decode_code(code: Any, max_bytes: int) -> bytes | None:
    """The zip archive's bytes, checked; UploadError (413 or 422) otherwise."""
    text = encoded_payload(code)
    if text is None:
        return None
    # base64 grows data by 4/3: refuse before decoding what is clearly too big
    if len(text) > (max_bytes * 4) // 3 + 8:
        raise UploadError(f"code: the archive is larger than the limit of {max_bytes} bytes", 413)
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise UploadError("code: not valid base64") from None
    if len(data) > max_bytes:
        raise UploadError(f"code: the archive is larger than the limit of {max_bytes} bytes", 413)
    check_zip(data)
    return data


def check_zip(data: bytes) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            names = z.namelist()
            bad = z.testzip()
    except (zipfile.BadZipFile, ValueError, OSError):
        raise UploadError("code: not a zip archive") from None
    if bad is not None:
        raise UploadError(f"code: archive member {bad!r} is corrupt")
    for name in names:
        norm = posixpath.normpath(name.replace("\\", "/"))
        if name.startswith(("/", "\\")) or norm == ".." or norm.startswith("../"):
            raise UploadError(f"code: archive member {name!r} points outside the code directory")
