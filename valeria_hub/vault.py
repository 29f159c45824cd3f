"""A user's storage identity from Vault: their uid (and gid) and S3 keys.

The hub never holds a Vault token that can read every user's secrets: it logs in to
Vault's JWT auth method *with the user's own Keycloak access token*, so Vault's
templated policy (``users/{{identity.entity.id}}/*``) lets it read that user's
entries only. The spawner and the jobs service share this module.

Vault is called over async HTTP (aiohttp) with timeouts, never through a blocking
client on the hub's event loop; the short-lived Vault token is revoked after use.
One client (and its kept-alive connections) per event loop and Vault settings serves
every lookup: a new client per lookup paid a TCP (and TLS) set-up for the login and
another for the second, concurrent read, about half of a spawn's Vault time.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

import httpx
from traitlets import Dict, Float, Integer, Unicode, default
from traitlets.config import LoggingConfigurable

from .bounded_http import Answer, BoundedSession, NoAnswer
from .metrics import VAULT_LOOKUP


class VaultError(Exception):
    """A lookup that failed; ``reason`` is machine-readable, the message is for people.

    Reasons: ``not_provisioned`` (the user has no uid/keys yet), ``login_rejected``
    (Vault refused the user's token), ``denied`` (Vault's policy refused a read),
    ``unavailable`` (Vault down, slow or answering 5xx), ``malformed`` (the stored
    data is not usable).
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Refusal:
    """How a failed lookup is answered: the HTTP status and the message people see."""

    status: int
    message: str


# The one table of what each reason means to the person and to HTTP, used by the
# spawner's refusal page and the jobs service's answers alike.
REFUSALS = {
    "not_provisioned": Refusal(
        403,
        "Your account has no storage identity yet (no uid or S3 keys). "
        "Contact support to have it created.",
    ),
    "login_rejected": Refusal(
        401,
        "The storage vault did not accept your login: log in to the hub again (log out, "
        "then log in) and retry; contact support if it persists.",
    ),
    "denied": Refusal(
        403, "The storage vault refused to give out your storage identity. Contact support."
    ),
    "unavailable": Refusal(
        503, "The storage vault is not reachable right now. Try again in a few minutes."
    ),
    # the stored entry is unusable: nothing the person can retry, the platform must fix it
    "malformed": Refusal(503, "Your storage identity in the vault is incomplete. Contact support."),
}


def refusal(reason: str) -> Refusal:
    """The answer for ``reason``; an unknown reason is a 503 that names no detail."""
    return REFUSALS.get(reason, Refusal(503, "Your storage identity could not be read."))


@dataclass(frozen=True)
class UserProfile:
    """Who a user is on the storage side. The keys never appear in repr()."""

    username: str
    entity_id: str
    uid: int
    gid: int | None
    s3_access_key: str = field(repr=False)
    s3_secret_key: str = field(repr=False)

    def s3_env(self, endpoint_url: str) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.s3_access_key,
            "AWS_SECRET_ACCESS_KEY": self.s3_secret_key,
            "S3_ENDPOINT_URL": endpoint_url,
        }


@dataclass(frozen=True)
class Timing:
    """Where a lookup spent its time (seconds), for metrics and benchmarks."""

    login: float = 0.0
    reads: float = 0.0
    total: float = 0.0


def make_tls_context(ca_bundle: str = "") -> ssl.SSLContext:
    """A TLS context trusting ``ca_bundle`` (else the system's CAs)."""
    if ca_bundle:
        return ssl.create_default_context(cafile=ca_bundle)
    return httpx.create_ssl_context()


# CA bundle -> its context, made once: loading the CA store takes tens of milliseconds of
# CPU, which a new context per lookup would spend at every spawn and job submission. A
# context is not bound to any loop.
_TLS_CONTEXTS: dict[str, ssl.SSLContext] = {}


async def tls_context(ca_bundle: str = "") -> ssl.SSLContext:
    """The one context for ``ca_bundle``, made in a worker thread the first time: loading
    the CA bundle stalled the hub's loop for about 50 ms at the first spawn of a rush."""
    context = _TLS_CONTEXTS.get(ca_bundle)
    if context is None:
        context = await asyncio.to_thread(make_tls_context, ca_bundle)
        context = _TLS_CONTEXTS.setdefault(ca_bundle, context)
    return context


# Seconds a lookup's request may wait for a turn (see BoundedClient) before it is
# refused as Vault being unavailable
QUEUE_SECONDS = 120.0
# Seconds an idle connection to Vault is kept for the next lookup: below Vault's own
# http_idle_timeout (5 minutes), above the seconds between a rush's spawns.
KEEPALIVE_SECONDS = 60.0
# (loop, settings) -> the client every lookup with those settings on that loop shares
_CLIENTS: dict[tuple[Any, ...], BoundedSession] = {}
# tasks that outlive their caller (revocations under way, the clients' closers), held
# until done: a task nobody holds may be collected while pending
_BACKGROUND: set[asyncio.Future] = set()


def _hold(task: asyncio.Future) -> asyncio.Future:
    """Keeps ``task`` referenced until it is done."""
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)
    return task


async def _close_with_loop(key: tuple[Any, ...], client: BoundedSession) -> None:
    """Keeps ``client`` for the loop's life; closes it when the loop's tasks are
    cancelled (``asyncio.run``'s end, the hub's shutdown), as KubeSpawner's clients."""
    try:
        await asyncio.Event().wait()
    finally:
        if _CLIENTS.get(key) is client:
            del _CLIENTS[key]
        with contextlib.suppress(Exception):
            await asyncio.shield(client.aclose())


def parse_uid(value: Any, what: str, minimum: int = 1) -> int:
    """A POSIX id from Vault's data: a decimal, never root, never below ``minimum``."""
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        raise VaultError("malformed", f"{what} in Vault is not a number") from None
    low = max(1, minimum)
    if number < low or number > 2**31 - 1:
        raise VaultError("malformed", f"{what} in Vault is out of range ({low}..2147483647)")
    return number


class VaultIdentity(LoggingConfigurable):
    """Reads a user's uid, gid and S3 keys from Vault with the user's own Keycloak token."""

    url = Unicode(
        "http://127.0.0.1:8200",
        config=True,
        help="Vault's base URL, e.g. https://vault.example.org (no /v1).",
    )
    jwt_mount = Unicode(
        "jwt", config=True, help="Mount path of Vault's JWT auth method (auth/<jwt_mount>/login)."
    )
    role = Unicode("valeria", config=True, help="The JWT auth role to log in with.")
    kv_mount = Unicode("valeria", config=True, help="Mount path of the KV version 2 engine.")
    uid_path = Unicode(
        "users/{entity_id}/uid",
        config=True,
        help="KV path of the uid secret; {entity_id} and {username} are filled in.",
    )
    uid_key = Unicode("uid", config=True, help="Key of the uid in the uid secret.")
    gid_key = Unicode(
        "gid",
        config=True,
        help="Key of the optional gid in the uid secret; missing means no gid.",
    )
    s3_path = Unicode(
        "users/{entity_id}/ceph",
        config=True,
        help="KV path of the S3 keys secret; {entity_id} and {username} are filled in.",
    )
    s3_access_key_key = Unicode(
        "AWS_ACCESS_KEY_ID", config=True, help="Key of the S3 access key in the S3 secret."
    )
    s3_secret_key_key = Unicode(
        "AWS_SECRET_ACCESS_KEY", config=True, help="Key of the S3 secret key in the S3 secret."
    )
    min_id = Integer(
        1000,
        config=True,
        help="Lowest uid/gid accepted from Vault: system accounts below it are refused "
        "(match the notebook SCC's uid range).",
    )
    default_gid = Integer(
        None,
        allow_none=True,
        config=True,
        help="gid of an entry that stores only a uid (entries of the original Valeria "
        "script); default: the uid itself. Never 0: at least min_id.",
    )
    timeout = Float(10.0, config=True, help="Seconds allowed for each Vault request.")
    connect_retries = Integer(
        1, config=True, help="Extra attempts after a connection error or a 5xx answer."
    )
    max_concurrent = Integer(
        8,
        min=1,
        config=True,
        help="Vault requests in flight at once from this process; more wait their turn "
        "(a rush of spawns would otherwise open a connection per lookup and flood the "
        "pool; see valeria_hub.bounded_http). A lookup's requests take a few ms, so 8 at "
        "once serve hundreds of spawns a second.",
    )
    extra_headers = Dict(
        config=True, help="Extra HTTP headers for every Vault request (e.g. X-Vault-Namespace)."
    )
    ca_bundle = Unicode(
        "",
        config=True,
        help="CA bundle for verifying Vault's TLS certificate; empty: system CAs.",
    )

    @default("log")
    def _log_default(self):
        import logging

        return logging.getLogger("valeria_hub.vault")

    async def _client(self) -> BoundedSession:
        """The client shared by every lookup with these settings on this loop (its
        connections belong to the loop they were made on)."""
        headers = {"X-Vault-Request": "true", **self.extra_headers}
        loop = asyncio.get_running_loop()
        key = (
            loop,
            self.url.rstrip("/"),
            self.timeout,
            self.ca_bundle,
            self.max_concurrent,
            tuple(sorted(headers.items())),
        )
        client = _CLIENTS.get(key)
        if client is None or client.is_closed:
            context = await tls_context(self.ca_bundle)
            client = _CLIENTS.get(key)  # another lookup may have made it meanwhile
            if client is None or client.is_closed:
                client = BoundedSession(
                    self.url.rstrip("/") + "/v1/",
                    max_concurrent=self.max_concurrent,
                    # waiting for a turn is not Vault failing to answer: in a rush of
                    # 1,000 spawns on a loaded machine turns came after more than the
                    # request timeout (19 spawns failed as "Vault unreachable"); the
                    # spawn's own start_timeout bounds the whole
                    queue_timeout=QUEUE_SECONDS,
                    keepalive_expiry=KEEPALIVE_SECONDS,
                    timeout=self.timeout,
                    verify=context,
                    headers=headers,
                )
                _CLIENTS[key] = client
                _hold(loop.create_task(_close_with_loop(key, client)))
        return client

    async def _request(
        self, client: BoundedSession, method: str, path: str, **kwargs: Any
    ) -> Answer:
        attempts = 1 + max(0, self.connect_retries)
        for attempt in range(attempts):
            try:
                resp = await client.request(method, path, **kwargs)
            except NoAnswer as e:
                if attempt + 1 < attempts:
                    if not e.timed_out:
                        await asyncio.sleep(0.2)
                    continue
                if e.timed_out:
                    raise VaultError(
                        "unavailable", f"Vault did not answer {method} {path} ({e})"
                    ) from None
                raise VaultError("unavailable", f"Vault is unreachable ({e})") from None
            if resp.status_code >= 500 and attempt + 1 < attempts:
                await asyncio.sleep(0.2)
                continue
            return resp
        raise AssertionError("unreachable")

    async def login(self, client: BoundedSession, access_token: str) -> tuple[str, str]:
        """Vault token and entity id for the owner of ``access_token``."""
        resp = await self._request(
            client,
            "POST",
            f"auth/{self.jwt_mount}/login",
            json={"role": self.role, "jwt": access_token},
        )
        if resp.status_code >= 500 or resp.status_code == 429:
            raise VaultError("unavailable", f"Vault login answered HTTP {resp.status_code}")
        if resp.status_code != 200:
            raise VaultError(
                "login_rejected",
                f"Vault refused the JWT login (HTTP {resp.status_code}: {_errors(resp)})",
            )
        auth = (resp.json() or {}).get("auth") or {}
        token, entity_id = auth.get("client_token"), auth.get("entity_id")
        if not token or not entity_id:
            raise VaultError("login_rejected", "Vault's JWT login returned no token or entity")
        return token, entity_id

    async def read_kv(
        self, client: BoundedSession, token: str, path: str, what: str
    ) -> dict[str, Any]:
        resp = await self._request(
            client,
            "GET",
            f"{self.kv_mount}/data/{path}",
            headers={"X-Vault-Token": token},
        )
        if resp.status_code == 404:
            raise VaultError("not_provisioned", f"no {what} stored in Vault for this user")
        if resp.status_code == 403:
            raise VaultError("denied", f"Vault's policy denies reading the {what}")
        if resp.status_code >= 500 or resp.status_code == 429:
            raise VaultError("unavailable", f"Vault answered HTTP {resp.status_code}")
        if resp.status_code != 200:
            raise VaultError("denied", f"Vault answered HTTP {resp.status_code} for the {what}")
        data = ((resp.json() or {}).get("data") or {}).get("data")
        if not isinstance(data, dict):
            raise VaultError("not_provisioned", f"the {what} in Vault has been deleted")
        return data

    async def revoke(self, client: BoundedSession, token: str) -> None:
        try:
            await client.request("POST", "auth/token/revoke-self", headers={"X-Vault-Token": token})
        except NoAnswer as e:
            self.log.warning("Could not revoke a Vault token: %s", e)

    async def fetch_profile(self, access_token: str, username: str) -> tuple[UserProfile, Timing]:
        """Log in as the user, read uid and S3 keys concurrently, revoke the token."""
        lookup = await self.lookup(access_token, username)
        await lookup.revoked
        return lookup.profile, lookup.timing

    async def lookup(self, access_token: str, username: str) -> Lookup:
        """As :meth:`fetch_profile`, but returns as soon as the reads are done: the
        revocation of the Vault token goes on in ``Lookup.revoked`` (a task), which the
        caller awaits later (the spawner at the end of the spawn), so the profile is not
        held back for one more round trip. A failed read revokes before raising."""
        t0 = time.perf_counter()
        result = "ok"
        try:
            return await self._lookup(access_token, username)
        except VaultError as e:
            result = e.reason
            raise
        finally:
            VAULT_LOOKUP.labels(result).observe(time.perf_counter() - t0)

    async def _lookup(self, access_token: str, username: str) -> Lookup:
        if not access_token:
            raise VaultError("login_rejected", "no Keycloak access token for this user")
        t0 = time.perf_counter()
        client = await self._client()
        token, entity_id = await self.login(client, access_token)
        t1 = time.perf_counter()
        fill = {"entity_id": entity_id, "username": username}
        try:
            uid_data, s3_data = await asyncio.gather(
                self.read_kv(client, token, self.uid_path.format(**fill), "uid"),
                self.read_kv(client, token, self.s3_path.format(**fill), "S3 keys"),
            )
        except BaseException:
            await asyncio.shield(self.revoke(client, token))
            raise
        revoked = _hold(asyncio.ensure_future(self.revoke(client, token)))
        t2 = time.perf_counter()
        profile = profile_from_secrets(
            username,
            entity_id,
            uid_data,
            s3_data,
            min_id=self.min_id,
            default_gid=self.default_gid,
            uid_key=self.uid_key,
            gid_key=self.gid_key,
            access_key_key=self.s3_access_key_key,
            secret_key_key=self.s3_secret_key_key,
        )
        return Lookup(profile, Timing(login=t1 - t0, reads=t2 - t1, total=t2 - t0), revoked)


@dataclass(frozen=True)
class Lookup:
    """A profile read from Vault, and the revocation of the Vault token used for it."""

    profile: UserProfile
    timing: Timing
    revoked: Awaitable[None]


def profile_from_secrets(
    username: str,
    entity_id: str,
    uid_data: dict[str, Any],
    s3_data: dict[str, Any],
    *,
    uid_key: str = "uid",
    gid_key: str = "gid",
    access_key_key: str = "AWS_ACCESS_KEY_ID",
    secret_key_key: str = "AWS_SECRET_ACCESS_KEY",
    min_id: int = 1,
    default_gid: int | None = None,
) -> UserProfile:
    """Pure: the profile from the two KV secrets, or VaultError naming what is missing.

    An entry without a gid (the original Valeria script wrote only the uid) gets
    ``default_gid``, or its uid: a workload never runs with the image's group, which is
    often 0.
    """
    if uid_key not in uid_data:
        raise VaultError("not_provisioned", f"the uid secret has no {uid_key!r} key")
    uid = parse_uid(uid_data[uid_key], "uid", min_id)
    if uid_data.get(gid_key) not in (None, ""):
        gid = parse_uid(uid_data[gid_key], "gid", min_id)
    else:
        gid = uid if default_gid is None else parse_uid(default_gid, "default_gid", min_id)
    missing = [k for k in (access_key_key, secret_key_key) if not s3_data.get(k)]
    if missing:
        raise VaultError("not_provisioned", f"the S3 secret lacks {', '.join(missing)}")
    return UserProfile(
        username=username,
        entity_id=entity_id,
        uid=uid,
        gid=gid,
        s3_access_key=str(s3_data[access_key_key]),
        s3_secret_key=str(s3_data[secret_key_key]),
    )


def _errors(resp: Answer) -> str:
    """Vault's error list, shortened; Vault's errors never carry secret values."""
    try:
        errors = resp.json().get("errors") or []
    except ValueError:
        return "no details"
    text = "; ".join(str(e).strip() for e in errors)[:200]
    return text or "no details"
