"""Vault as the onboarding AppRole uses it, through hvac: log in, find or create the
entity and its JWT alias, write the user's KV secrets, and look at KV metadata.

Synchronous hvac (this is a CLI, not the hub's loop) with a timeout on every call.
No method reads a secret's data: the AppRole's policy forbids it, and so does this code
(only KV *metadata* and identity data are ever read).
Errors carry Vault's error list (which never holds secret values) and never a token:
hvac's and requests' own exception strings carry URLs and are never shown.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import hvac
import hvac.exceptions
import requests


class VaultCallError(Exception):
    """A Vault call that did not succeed; ``status`` 0 means Vault was unreachable."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


_MULTIERROR = re.compile(r"^\d+ errors? occurred:")
_ITEM = re.compile(r"^\s*\* (.+)$", re.M)


def _one_line(error: Any) -> str:
    """Vault's ``1 error occurred:\\n\\t* permission denied\\n\\n`` as ``permission denied``."""
    text = str(error).strip()
    items = _ITEM.findall(text)
    if _MULTIERROR.match(text) and items:
        text = "; ".join(items)
    return " ".join(text.split())


def _errors(e: hvac.exceptions.VaultError) -> str:
    """Vault's error list. hvac parses it only for ``application/json`` exactly; any
    other JSON answer is parsed here, and a body that is not JSON is never shown."""
    errors = e.errors
    if errors is None:
        try:
            errors = (json.loads(e.text or "") or {}).get("errors")
        except (ValueError, AttributeError):
            errors = None
    if isinstance(errors, str):
        errors = [errors]
    if not isinstance(errors, list):
        return "no details"
    return "; ".join(_one_line(err) for err in errors)[:300] or "no details"


class OnboardingVault:
    """One AppRole session against Vault (use as a context manager; the token is revoked)."""

    def __init__(
        self,
        url: str,
        *,
        kv_mount: str = "valeria",
        jwt_mount: str = "jwt",
        approle_mount: str = "approle",
        timeout: float = 10.0,
        verify: bool | str = True,
        namespace: str = "",
    ) -> None:
        self.client = hvac.Client(
            url=url.rstrip("/"),
            token="",  # never VAULT_TOKEN or ~/.vault-token: only the AppRole's token
            verify=verify,  # explicit, so hvac does not fall back to VAULT_CACERT
            timeout=timeout,
            namespace=namespace or None,
            # never follow a redirect: the token and the secrets go to this URL only
            allow_redirects=False,
        )
        # hvac's exceptions name the status only by their class: keep the real one
        self._status = 0
        self.client.session.hooks["response"].append(self._remember_status)
        self.kv_mount = kv_mount.strip("/")
        self.jwt_mount = jwt_mount.strip("/")
        self.approle_mount = approle_mount.strip("/")

    @property
    def token(self) -> str:
        return self.client.token or ""

    def __enter__(self) -> OnboardingVault:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Revoke the AppRole token (best effort) and close the connections."""
        if self.token:
            try:
                self.client.auth.token.revoke_self()
            except (hvac.exceptions.VaultError, requests.exceptions.RequestException, OSError):
                pass
            self.client.token = ""
        self.client.adapter.close()

    # -- plumbing -------------------------------------------------------------------
    def _remember_status(self, resp: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._status = resp.status_code

    def _call(
        self, what: str, method: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> dict[str, Any] | None:
        """Vault's JSON answer, None for 204, or VaultCallError with Vault's errors."""
        self._status = 0
        try:
            result = method(*args, **kwargs)
        except hvac.exceptions.VaultError as e:
            status = self._status
            if not status:  # refused by hvac before sending (never with our arguments)
                raise VaultCallError(0, f"{what}: {type(e).__name__}") from None
            raise VaultCallError(status, f"{what}: HTTP {status}: {_errors(e)}") from None
        except requests.exceptions.Timeout:
            raise VaultCallError(0, f"Vault did not answer in time ({what})") from None
        except requests.exceptions.SSLError:
            raise VaultCallError(
                0, f"TLS with Vault failed ({what}: SSLError; check the URL and --ca-bundle)"
            ) from None
        except (
            requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema,
            requests.exceptions.InvalidURL,
        ) as e:
            raise VaultCallError(
                0,
                f"the Vault URL is not usable ({what}: {type(e).__name__}; expected https://HOST)",
            ) from None
        except requests.exceptions.RequestException as e:
            # the exception's text holds the URL: only its type is shown
            raise VaultCallError(0, f"Vault is unreachable ({what}: {type(e).__name__})") from None
        except OSError as e:
            # requests: a CA bundle or client certificate file that cannot be read
            raise VaultCallError(
                0, f"cannot set up TLS to Vault ({what}: {type(e).__name__}; check --ca-bundle)"
            ) from None
        if isinstance(result, dict):
            return result
        # hvac hands back the requests.Response for 204, for a 200 that is not JSON,
        # and for a 1xx/3xx it does not raise on
        status = getattr(result, "status_code", 0)
        if status == 204:
            return None
        raise VaultCallError(status, f"{what}: HTTP {status}: no details")

    # -- login ------------------------------------------------------------------------
    def login(self, role_id: str, secret_id: str) -> None:
        what = "AppRole login"
        answer = self._call(
            what,
            self.client.auth.approle.login,
            role_id=role_id,
            secret_id=secret_id,
            use_token=False,
            mount_point=self.approle_mount,
        )
        token = ((answer or {}).get("auth") or {}).get("client_token")
        if not token:
            raise VaultCallError(200, f"{what}: no token in the answer")
        self.client.token = token

    def jwt_accessor(self) -> str:
        what = "reading sys/auth for the JWT mount accessor"
        body = self._call(what, self.client.sys.list_auth_methods) or {}
        mounts = body.get("data") or body
        mount = mounts.get(self.jwt_mount + "/")
        if not isinstance(mount, dict) or not mount.get("accessor"):
            raise VaultCallError(404, f"no auth method mounted at auth/{self.jwt_mount}/")
        return str(mount["accessor"])

    # -- identity ---------------------------------------------------------------------
    def entity_by_alias(self, alias_name: str, accessor: str) -> dict[str, Any] | None:
        answer = self._call(
            "looking up the entity by its JWT alias",
            self.client.secrets.identity.lookup_entity,
            alias_name=alias_name,
            alias_mount_accessor=accessor,
        )
        return None if answer is None else answer.get("data")

    def entity_by_name(self, name: str) -> dict[str, Any] | None:
        answer = self._call(
            "looking up the entity by name",
            self.client.secrets.identity.lookup_entity,
            name=name,
        )
        return None if answer is None else answer.get("data")

    def create_entity(self, name: str, metadata: dict[str, str]) -> str:
        what = f"creating the entity {name!r}"
        answer = self._call(
            what, self.client.secrets.identity.create_or_update_entity, name=name, metadata=metadata
        )
        entity_id = ((answer or {}).get("data") or {}).get("id")
        if not entity_id:
            # 204: an entity of that name appeared meanwhile and was updated instead
            raise VaultCallError(204, f"{what}: an entity of that name exists already")
        return str(entity_id)

    def set_entity_metadata(self, entity_id: str, metadata: dict[str, str]) -> None:
        self._call(
            "updating the entity's metadata",
            self.client.secrets.identity.update_entity,
            entity_id=entity_id,
            metadata=metadata,
        )

    def create_alias(self, alias_name: str, entity_id: str, accessor: str) -> None:
        self._call(
            "creating the JWT alias",
            self.client.secrets.identity.create_or_update_entity_alias,
            name=alias_name,
            canonical_id=entity_id,
            mount_accessor=accessor,
        )

    # -- KV v2 --------------------------------------------------------------------------
    def secret_exists(self, path: str) -> bool | None:
        """From KV metadata only: a current version that is neither deleted nor destroyed.

        None when the policy does not allow reading KV metadata (seed 003's does not).
        """
        try:
            answer = self._call(
                f"reading the metadata of {path}",
                self.client.secrets.kv.v2.read_secret_metadata,
                path=path,
                mount_point=self.kv_mount,
            )
        except VaultCallError as e:
            if e.status == 404:
                return False
            if e.status == 403:
                return None
            raise
        meta = (answer or {}).get("data") or {}
        current = str(meta.get("current_version") or "")
        version = (meta.get("versions") or {}).get(current) or {}
        return bool(current) and not version.get("deletion_time") and not version.get("destroyed")

    def write_secret(self, path: str, data: dict[str, str], *, cas: int | None = None) -> int:
        """Write a new version; with ``cas``, only over that version (0: only if new)."""
        answer = self._call(
            f"writing {path}",
            self.client.secrets.kv.v2.create_or_update_secret,
            path=path,
            secret=data,
            cas=cas,
            mount_point=self.kv_mount,
        )
        try:
            return int(((answer or {}).get("data") or {}).get("version") or 0)
        except (TypeError, ValueError):
            return 0
