"""Vault's HTTP API as the onboarding AppRole uses it: log in, find or create the
entity and its JWT alias, write the user's KV secrets, and look at KV metadata.

Synchronous httpx with a timeout on every call (this is a CLI, not the hub's loop).
No method reads a secret's data: the AppRole's policy forbids it, and so does this code.
Errors carry Vault's error list (which never holds secret values) and never a token.
"""

from __future__ import annotations

from typing import Any

import httpx


class VaultCallError(Exception):
    """A Vault call that did not succeed; ``status`` 0 means Vault was unreachable."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _errors(resp: httpx.Response) -> str:
    try:
        errors = resp.json().get("errors") or []
    except ValueError:
        return "no details"
    return "; ".join(str(e).strip() for e in errors)[:300] or "no details"


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
        headers = {"X-Vault-Request": "true"}
        if namespace:
            headers["X-Vault-Namespace"] = namespace
        self.http = httpx.Client(
            base_url=url.rstrip("/") + "/v1/", timeout=timeout, verify=verify, headers=headers
        )
        self.kv_mount = kv_mount.strip("/")
        self.jwt_mount = jwt_mount.strip("/")
        self.approle_mount = approle_mount.strip("/")
        self.token = ""

    def __enter__(self) -> OnboardingVault:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if self.token:
            try:
                self.http.post("auth/token/revoke-self", headers=self._auth())
            except httpx.HTTPError:
                pass
            self.token = ""
        self.http.close()

    # -- plumbing -------------------------------------------------------------------
    def _auth(self) -> dict[str, str]:
        return {"X-Vault-Token": self.token} if self.token else {}

    def _call(self, method: str, path: str, what: str, **kwargs: Any) -> httpx.Response:
        try:
            resp = self.http.request(method, path, headers=self._auth(), **kwargs)
        except httpx.TimeoutException:
            raise VaultCallError(0, f"Vault did not answer in time ({what})") from None
        except httpx.HTTPError as e:
            raise VaultCallError(0, f"Vault is unreachable ({what}: {type(e).__name__})") from None
        return resp

    def _fail(self, resp: httpx.Response, what: str) -> VaultCallError:
        return VaultCallError(resp.status_code, f"{what}: HTTP {resp.status_code}: {_errors(resp)}")

    # -- login ------------------------------------------------------------------------
    def login(self, role_id: str, secret_id: str) -> None:
        what = "AppRole login"
        resp = self._call(
            "POST",
            f"auth/{self.approle_mount}/login",
            what,
            json={"role_id": role_id, "secret_id": secret_id},
        )
        if resp.status_code != 200:
            raise self._fail(resp, what)
        token = ((resp.json() or {}).get("auth") or {}).get("client_token")
        if not token:
            raise VaultCallError(resp.status_code, f"{what}: no token in the answer")
        self.token = token

    def jwt_accessor(self) -> str:
        what = "reading sys/auth for the JWT mount accessor"
        resp = self._call("GET", "sys/auth", what)
        if resp.status_code != 200:
            raise self._fail(resp, what)
        body = resp.json() or {}
        mounts = body.get("data") or body
        mount = mounts.get(self.jwt_mount + "/")
        if not isinstance(mount, dict) or not mount.get("accessor"):
            raise VaultCallError(404, f"no auth method mounted at auth/{self.jwt_mount}/")
        return str(mount["accessor"])

    # -- identity ---------------------------------------------------------------------
    def _lookup(self, body: dict[str, str], what: str) -> dict[str, Any] | None:
        resp = self._call("POST", "identity/lookup/entity", what, json=body)
        if resp.status_code == 204:
            return None
        if resp.status_code != 200:
            raise self._fail(resp, what)
        return (resp.json() or {}).get("data")

    def entity_by_alias(self, alias_name: str, accessor: str) -> dict[str, Any] | None:
        return self._lookup(
            {"alias_name": alias_name, "alias_mount_accessor": accessor},
            "looking up the entity by its JWT alias",
        )

    def entity_by_name(self, name: str) -> dict[str, Any] | None:
        return self._lookup({"name": name}, "looking up the entity by name")

    def create_entity(self, name: str, metadata: dict[str, str]) -> str:
        what = f"creating the entity {name!r}"
        resp = self._call(
            "POST", "identity/entity", what, json={"name": name, "metadata": metadata}
        )
        if resp.status_code != 200:
            # 204: an entity of that name appeared meanwhile and was updated instead
            raise self._fail(resp, what)
        return str(resp.json()["data"]["id"])

    def set_entity_metadata(self, entity_id: str, metadata: dict[str, str]) -> None:
        what = "updating the entity's metadata"
        resp = self._call(
            "POST", f"identity/entity/id/{entity_id}", what, json={"metadata": metadata}
        )
        if resp.status_code not in (200, 204):
            raise self._fail(resp, what)

    def create_alias(self, alias_name: str, entity_id: str, accessor: str) -> None:
        what = "creating the JWT alias"
        body = {"name": alias_name, "canonical_id": entity_id, "mount_accessor": accessor}
        resp = self._call("POST", "identity/entity-alias", what, json=body)
        if resp.status_code not in (200, 204):
            raise self._fail(resp, what)

    # -- KV v2 --------------------------------------------------------------------------
    def secret_exists(self, path: str) -> bool | None:
        """From KV metadata only: a current version that is neither deleted nor destroyed.

        None when the policy does not allow reading KV metadata (seed 003's does not).
        """
        what = f"reading the metadata of {path}"
        resp = self._call("GET", f"{self.kv_mount}/metadata/{path}", what)
        if resp.status_code == 404:
            return False
        if resp.status_code == 403:
            return None
        if resp.status_code != 200:
            raise self._fail(resp, what)
        meta = (resp.json() or {}).get("data") or {}
        current = str(meta.get("current_version") or "")
        version = (meta.get("versions") or {}).get(current) or {}
        return bool(current) and not version.get("deletion_time") and not version.get("destroyed")

    def write_secret(self, path: str, data: dict[str, str]) -> int:
        what = f"writing {path}"
        resp = self._call("POST", f"{self.kv_mount}/data/{path}", what, json={"data": data})
        if resp.status_code not in (200, 204):
            raise self._fail(resp, what)
        try:
            return int(((resp.json() or {}).get("data") or {}).get("version") or 0)
        except ValueError:
            return 0
