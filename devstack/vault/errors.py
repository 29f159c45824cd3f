"""Vault's error answers, as the real server words them.

Checked against Vault's documentation ("Error Responses" in the tokens concept page)
and real server output: an ACL denial is a one-element multierror, a bad token adds
"invalid token", a request without any token is a bare "permission denied".
"""

from __future__ import annotations

from typing import Any

ACL_DENIED = "1 error occurred:\n\t* permission denied\n\n"
INVALID_TOKEN = "2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n"
MISSING_TOKEN = "permission denied"
UNSUPPORTED_OPERATION = "1 error occurred:\n\t* unsupported operation\n\n"
UNSUPPORTED_PATH = "1 error occurred:\n\t* unsupported path\n\n"
SEALED = "Vault is sealed"


class VaultError(Exception):
    """An error answer: HTTP status plus the ``errors`` list (or a raw ``data`` body).

    ``errors=None`` with ``data`` set answers like Vault's 404 for a deleted KV
    version: no ``errors`` key, the version metadata under ``data``.
    """

    def __init__(self, status: int, errors: list[str] | None, data: Any = None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.errors = errors
        self.data = data


def acl_denied() -> VaultError:
    return VaultError(403, [ACL_DENIED])


def invalid_token() -> VaultError:
    return VaultError(403, [INVALID_TOKEN])


def missing_token() -> VaultError:
    return VaultError(403, [MISSING_TOKEN])


def bad_request(message: str) -> VaultError:
    return VaultError(400, [message])
