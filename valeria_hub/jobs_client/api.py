"""A small synchronous client of the jobs service, for ``valeria-hub jobs``.

Every call has a timeout; every failure becomes :class:`JobsError` with one line a
person can act on (the token never appears in it). The configuration (service URL
and the user's hub token) lives in ``$XDG_CONFIG_HOME/valeria-hub/jobs.json``, readable
by its owner only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

SERVICE_PATH = "services/jobs/"
DEFAULT_TIMEOUT = 30.0
# a followed log ends after the service's log_idle_timeout (300 s) of silence: wait longer
FOLLOW_READ_TIMEOUT = 330.0


class JobsError(Exception):
    """A failed call: ``message`` is one line; ``exit_code`` is the CLI's exit status."""

    def __init__(self, message: str, exit_code: int = 1, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.status = status


# -- configuration ------------------------------------------------------------------------
def config_path(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_CONFIG_HOME") or os.path.join(env.get("HOME") or "~", ".config")
    return Path(base).expanduser() / "valeria-hub" / "jobs.json"


@dataclass(frozen=True)
class ClientConfig:
    url: str
    token: str = field(repr=False)


def normalize_url(url: str) -> str:
    url = url.strip()
    if not url.startswith(("http://", "https://")):
        raise JobsError(f"the URL must start with http:// or https://, got {url!r}", 2)
    return url if url.endswith("/") else url + "/"


def service_url(url: str) -> str:
    """The jobs service's URL from what a person may give: the service's own URL as it
    is, or the hub's address (``https://hub.example.org``, ``.../hub/home``, a hub under
    a prefix) with ``services/jobs/`` in place of its ``hub/...`` part. Pure."""
    url = normalize_url(url)
    scheme, rest = url.split("://", 1)
    host, _, path = rest.partition("/")
    path = "/" + path
    if "/services/" in path:
        return url
    if "/hub/" in path:
        path = path[: path.index("/hub/") + 1]
    return f"{scheme}://{host}{path}{SERVICE_PATH}"


def load_config(path: Path) -> ClientConfig | None:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise JobsError(f"cannot read {path}: {type(e).__name__}", 2) from None
    if not isinstance(data, dict) or not data.get("url") or not data.get("token"):
        raise JobsError(f"{path} is incomplete: run `valeria-hub jobs configure`", 2)
    return ClientConfig(str(data["url"]), str(data["token"]))


def save_config(path: Path, config: ClientConfig) -> None:
    """Write the file owner-only (0600) from the start: the token is a credential."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"url": config.url, "token": config.token}, f)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


# -- errors ---------------------------------------------------------------------------------
def _detail(resp: httpx.Response) -> Any:
    try:
        body = resp.json()
    except ValueError:
        return None
    return body.get("detail") if isinstance(body, dict) else None


def validation_text(detail: Any) -> str:
    """FastAPI's 422 list (``loc``/``msg``) or the service's "field: reason" string."""
    if isinstance(detail, list) and detail:
        parts = []
        for item in detail[:3]:
            loc = (
                [str(x) for x in item.get("loc", []) if x != "body"]
                if isinstance(item, dict)
                else []
            )
            msg = item.get("msg", "invalid") if isinstance(item, dict) else str(item)
            parts.append(f"{'.'.join(loc) or 'request'}: {msg}")
        return "; ".join(parts)
    return str(detail) if detail else "the request was refused"


def error_message(status: int, detail: Any, what: str) -> str:
    """One line for an HTTP failure of ``what`` (e.g. "job 'x'"). Pure."""
    text = detail if isinstance(detail, str) else None
    if status == 401:
        why = text or "no valid token"
        return (
            f"the token is invalid or has expired ({why}): log in to the hub again, "
            "make a new token and run `valeria-hub jobs configure`"
        )
    if status == 403:
        return f"forbidden: {text or 'the token may not use the jobs service'}"
    if status == 404:
        if text:
            return f"not found: {text}"
        return f"not found: {what} (is the service URL right?)"
    if status == 409:
        return f"conflict: {text or what + ' already exists'}"
    if status == 413:
        return f"too large: {text or 'the upload exceeds the service limit'}"
    if status == 422:
        return f"invalid {what}: {validation_text(detail)}"
    if status == 503:
        return f"the service is unavailable: {text or 'try again later'}"
    if 300 <= status < 400:
        return f"the service answered a redirect (HTTP {status}): is the service URL right?"
    return f"the service failed (HTTP {status}){': ' + text if text else ''}"


def check(resp: httpx.Response, what: str) -> httpx.Response:
    if resp.status_code < 300:
        return resp
    if resp.is_stream_consumed is False:
        resp.read()
    raise JobsError(error_message(resp.status_code, _detail(resp), what), 1, resp.status_code)


# -- the client ------------------------------------------------------------------------------
KINDS = {"Job": "jobs/", "CronJob": "cronjobs/"}


class JobsClient:
    """The service's REST API (kbatch-compatible) with one-line errors."""

    def __init__(self, url: str, token: str | None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.url = normalize_url(url)
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"token {token}"
        self.timeout = timeout
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, follow_redirects=False
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> JobsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, what: str, **kwargs: Any) -> httpx.Response:
        try:
            resp = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise JobsError(
                f"the jobs service at {self.url} did not answer within {self.timeout:g}s", 3
            ) from None
        except httpx.HTTPError as e:
            raise JobsError(
                f"cannot reach the jobs service at {self.url} ({type(e).__name__})", 3
            ) from None
        return check(resp, what)

    def info(self) -> dict[str, Any]:
        resp = self._request("GET", "", "the service")
        try:
            data = resp.json()
        except ValueError:
            data = None
        if not isinstance(data, dict) or data.get("message") != "kbatch":
            raise JobsError(f"{self.url} is not a jobs service", 2)
        return data

    def whoami(self) -> dict[str, Any]:
        return self._request("GET", "authorized", "token").json()

    def profiles(self) -> dict[str, Any]:
        return self._request("GET", "profiles/", "profiles").json()

    def submit(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._request("POST", KINDS[kind], kind.lower(), json=body).json()

    def list(self, kind: str, *, summary: bool = False) -> dict[str, Any]:
        """The caller's list; ``summary``: each item cut to what a table shows (for
        2,000 jobs, 0.65 MB of JSON to parse instead of 12.6 MB; a service without it
        sends the full list, which the tables read the same)."""
        params = {"view": "summary"} if summary else {}
        return self._request("GET", KINDS[kind], kind.lower() + "s", params=params).json()

    def show(self, kind: str, name: str) -> dict[str, Any]:
        return self._request("GET", KINDS[kind] + name, f"{kind.lower()} {name!r}").json()

    def delete(self, kind: str, name: str) -> dict[str, Any]:
        return self._request("DELETE", KINDS[kind] + name, f"{kind.lower()} {name!r}").json()

    def events(self, kind: str, name: str) -> dict[str, Any]:
        """The workload's Kubernetes events (a Job's with its pods'), oldest first."""
        what = f"events of {kind.lower()} {name!r}"
        return self._request("GET", f"{KINDS[kind]}{name}/events", what).json()

    def pods(self, job_name: str | None = None) -> dict[str, Any]:
        params = {"job_name": job_name} if job_name else {}
        return self._request("GET", "pods/", "pods", params=params).json()

    def logs(self, name: str) -> str:
        return self._request("GET", f"jobs/logs/{name}/", f"logs of {name!r}").text

    def follow_logs(self, name: str, read_timeout: float = FOLLOW_READ_TIMEOUT) -> Iterator[str]:
        """The log as it is written, until the container ends."""
        timeout = httpx.Timeout(self.timeout, read=read_timeout)
        request = self._http.build_request(
            "GET", f"jobs/logs/{name}/", params={"stream": "true"}, timeout=timeout
        )
        try:
            resp = self._http.send(request, stream=True)
        except httpx.TimeoutException:
            raise JobsError(f"the jobs service at {self.url} did not answer in time", 3) from None
        except httpx.HTTPError as e:
            raise JobsError(
                f"cannot reach the jobs service at {self.url} ({type(e).__name__})", 3
            ) from None
        try:
            check(resp, f"logs of {name!r}")
            try:
                yield from resp.iter_text()
            except httpx.ReadTimeout:
                raise JobsError(
                    f"no log output for {read_timeout:g}s; stopped following", 3
                ) from None
            except httpx.HTTPError as e:
                raise JobsError(f"the log stream broke ({type(e).__name__})", 3) from None
        finally:
            resp.close()
