"""The Kubernetes edge: kubernetes_asyncio calls with timeouts, errors as KubeError.

Answers are returned as the Python client's ``to_dict()`` shapes (snake_case), which
is what kbatch reads; callers check ownership on those dicts.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.rest import ApiException

from ..kube_session import without_environment_lookups
from .shapes import client_shape, iso_datetimes

IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class KubeError(Exception):
    """A failed Kubernetes call: the API's status (0 when unreachable) and its message."""

    def __init__(self, status: int, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason


def _error(e: ApiException) -> KubeError:
    message, reason = e.reason or "error", ""
    try:
        body = json.loads(e.body or "{}")
        message = body.get("message") or message
        reason = body.get("reason") or ""
    except (ValueError, TypeError, AttributeError):
        pass
    return KubeError(e.status or 0, str(message), reason)


def _default_kubeconfig() -> str:
    return os.path.expanduser("~/.kube/config")


def _incluster_namespace() -> str | None:
    try:
        return IN_CLUSTER_NAMESPACE.read_text().strip() or None
    except OSError:
        return None


class Kube:
    """Typed API objects over one ApiClient; every call carries ``timeout``.

    Followed logs go through a second ApiClient with its own connection pool
    (``stream_pool_size`` connections, 0: no limit; the logs router caps how many streams
    are open): a stream holds its connection for as long as it follows, and on the
    shared pool enough of them would leave every other call waiting for a connection.
    """

    def __init__(
        self, api_client: client.ApiClient, timeout: float = 10.0, stream_pool_size: int = 0
    ) -> None:
        self.api_client = api_client
        self.timeout = timeout
        self.stream_pool_size = stream_pool_size
        self._stream_client: client.ApiClient | None = None
        self._watch_client: client.ApiClient | None = None
        self.core = client.CoreV1Api(api_client)
        self.batch = client.BatchV1Api(api_client)
        self.net = client.NetworkingV1Api(api_client)
        self.rbac = client.RbacAuthorizationV1Api(api_client)
        self.default_namespace = "default"

    @classmethod
    async def connect(
        cls, kubeconfig: str = "", timeout: float = 10.0, stream_pool_size: int = 0
    ) -> Kube:
        """From a kubeconfig file, else from the in-cluster service account."""
        cfg = client.Configuration()
        namespace = None
        if kubeconfig or not os.environ.get("KUBERNETES_SERVICE_HOST"):
            path = kubeconfig or _default_kubeconfig()
            loader = await config.load_kube_config(
                config_file=path, client_configuration=cfg, persist_config=False
            )
            namespace = (loader.current_context or {}).get("context", {}).get("namespace")
        else:
            config.load_incluster_config(client_configuration=cfg)
            namespace = _incluster_namespace()
        api = without_environment_lookups(client.ApiClient(configuration=cfg))
        kube = cls(api, timeout, stream_pool_size)
        kube.default_namespace = namespace or "default"
        return kube

    async def close(self) -> None:
        await self.api_client.close()
        if self._stream_client is not None:
            await self._stream_client.close()
        if self._watch_client is not None:
            await self._watch_client.close()

    def _streams(self) -> client.CoreV1Api:
        """The log streams' own client (made on first use, inside the running loop)."""
        if self._stream_client is None:
            # a copy: same server and credentials (the in-cluster token hook refreshes
            # copies too), its own pool size
            cfg = copy.deepcopy(self.api_client.configuration)
            cfg.connection_pool_maxsize = self.stream_pool_size
            self._stream_client = without_environment_lookups(client.ApiClient(configuration=cfg))
        return client.CoreV1Api(self._stream_client)

    def _batch_streams(self) -> client.BatchV1Api:
        """The batch API on the watches' own client: a watch holds its connection as a
        followed log does, and neither may wait behind the other (how many watches run
        is bounded by the list cache)."""
        if self._watch_client is None:
            cfg = copy.deepcopy(self.api_client.configuration)
            cfg.connection_pool_maxsize = 0  # aiohttp: no limit
            self._watch_client = without_environment_lookups(client.ApiClient(configuration=cfg))
        return client.BatchV1Api(self._watch_client)

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(*args, _request_timeout=self.timeout, **kwargs)
        except ApiException as e:
            raise _error(e) from None
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            raise KubeError(0, f"the Kubernetes API is unreachable ({type(e).__name__})") from None

    async def _raw(self, fn: Any, type_name: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Call ``fn`` for raw JSON and shape it like ``to_dict()`` (see client_shape)."""
        resp = await self._call(fn, *args, _preload_content=False, **kwargs)
        try:
            if not 200 <= resp.status < 300:
                # unread, the client raises nothing: the status is ours to check
                raise _error_from_body(resp.status, await resp.text(), resp.reason or "")
            data = await resp.json(content_type=None)
        except (ValueError, aiohttp.ClientError) as e:
            raise KubeError(
                0, f"the Kubernetes API answered garbage ({type(e).__name__})"
            ) from None
        finally:
            resp.release()
        return client_shape(data, type_name)

    async def _unread(self, fn: Any, *args: Any, **kwargs: Any) -> None:
        """Call ``fn`` for its status only: the answer (the object sent, back again) is
        not turned into models, which cost more CPU than the rest of a submission."""
        resp = await self._call(fn, *args, _preload_content=False, **kwargs)
        try:
            if not 200 <= resp.status < 300:
                raise _error_from_body(resp.status, await resp.text(), resp.reason or "")
        except aiohttp.ClientError as e:
            raise KubeError(0, f"the Kubernetes API failed ({type(e).__name__})") from None
        finally:
            resp.release()

    # -- namespaces -------------------------------------------------------------------
    async def read_namespace(self, name: str) -> dict[str, Any] | None:
        try:
            return iso_datetimes((await self._call(self.core.read_namespace, name)).to_dict())
        except KubeError as e:
            if e.status == 404:
                return None
            raise

    async def create_namespace(self, body: dict[str, Any]) -> None:
        await self._call(self.core.create_namespace, body)

    async def _unless_no_namespace(self, namespace: str, e: KubeError) -> KubeError:
        """A 403 in a namespace that does not exist (yet) as the 404 it stands for.

        The hub's account has rights only in the namespaces it has made and bound, so
        reading a person's jobs before their namespace exists is refused (403), not
        answered "not found". Only when a look at the namespace says it is missing; any
        other 403 stays one.
        """
        if e.status != 403:
            return e
        try:
            missing = await self.read_namespace(namespace) is None
        except KubeError:
            return e
        return KubeError(404, f'namespaces "{namespace}" not found', "NotFound") if missing else e

    async def create_if_missing(self, kind: str, namespace: str, body: dict[str, Any]) -> None:
        fn = {
            "NetworkPolicy": self.net.create_namespaced_network_policy,
            "ResourceQuota": self.core.create_namespaced_resource_quota,
            "RoleBinding": self.rbac.create_namespaced_role_binding,
        }[kind]
        try:
            await self._call(fn, namespace, body)
        except KubeError as e:
            if e.status != 409:
                raise

    # -- secrets and config maps -----------------------------------------------------------
    async def create_secret(self, namespace: str, body: dict[str, Any]) -> None:
        await self._unread(self.core.create_namespaced_secret, namespace, body)

    async def create_configmap(self, namespace: str, body: dict[str, Any]) -> None:
        await self._unread(self.core.create_namespaced_config_map, namespace, body)

    async def delete(self, kind: str, namespace: str, name: str) -> None:
        """Delete, background propagation; a missing object is fine."""
        fn = {
            "Secret": self.core.delete_namespaced_secret,
            "ConfigMap": self.core.delete_namespaced_config_map,
            "Job": self.batch.delete_namespaced_job,
            "CronJob": self.batch.delete_namespaced_cron_job,
        }[kind]
        try:
            await self._call(fn, name, namespace, propagation_policy="Background")
        except KubeError as e:
            if e.status != 404:
                raise

    # -- jobs and cron jobs ------------------------------------------------------------------
    async def create_workload(self, kind: str, namespace: str, body: dict) -> dict[str, Any]:
        fn = (
            self.batch.create_namespaced_job
            if kind == "Job"
            else self.batch.create_namespaced_cron_job
        )
        type_name = "V1Job" if kind == "Job" else "V1CronJob"
        return await self._raw(fn, type_name, namespace, body)  # no model round trip

    async def read_workload(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        fn = (
            self.batch.read_namespaced_job if kind == "Job" else self.batch.read_namespaced_cron_job
        )
        try:
            return iso_datetimes((await self._call(fn, name, namespace)).to_dict())
        except KubeError as e:
            if (await self._unless_no_namespace(namespace, e)).status == 404:
                return None
            raise

    async def list_workloads(self, kind: str, namespace: str, selector: str) -> dict[str, Any]:
        fn = (
            self.batch.list_namespaced_job if kind == "Job" else self.batch.list_namespaced_cron_job
        )
        type_name = "V1JobList" if kind == "Job" else "V1CronJobList"
        try:
            return await self._raw(fn, type_name, namespace, label_selector=selector)
        except KubeError as e:
            raise await self._unless_no_namespace(namespace, e) from None

    async def watch_workloads(
        self, kind: str, namespace: str, selector: str, resource_version: str, seconds: int
    ) -> WatchStream:
        """Watch from ``resource_version`` on the streams' own pool (a watch holds its
        connection); the API server ends it after ``seconds``. Errors before the first
        event raise KubeError here."""
        fn = (
            self._batch_streams().list_namespaced_job
            if kind == "Job"
            else self._batch_streams().list_namespaced_cron_job
        )
        resp = await self._open_stream(
            fn,
            seconds + 30,
            namespace,
            label_selector=selector,
            resource_version=resource_version,
            watch=True,
            allow_watch_bookmarks=True,
            timeout_seconds=seconds,
        )
        return WatchStream(resp)

    async def delete_workload(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        fn = (
            self.batch.delete_namespaced_job
            if kind == "Job"
            else self.batch.delete_namespaced_cron_job
        )
        result = await self._call(fn, name, namespace, propagation_policy="Background")
        return iso_datetimes(result.to_dict()) if hasattr(result, "to_dict") else {}

    # -- pods and logs ------------------------------------------------------------------------
    async def list_pods(self, namespace: str, selector: str) -> dict[str, Any]:
        try:
            return await self._raw(
                self.core.list_namespaced_pod, "V1PodList", namespace, label_selector=selector
            )
        except KubeError as e:
            raise await self._unless_no_namespace(namespace, e) from None

    async def read_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return iso_datetimes(
                (await self._call(self.core.read_namespaced_pod, name, namespace)).to_dict()
            )
        except KubeError as e:
            if (await self._unless_no_namespace(namespace, e)).status == 404:
                return None
            raise

    # -- events ------------------------------------------------------------------------------
    async def list_events(self, namespace: str, field_selector: str) -> dict[str, Any]:
        """core/v1 Events in ``namespace`` that ``field_selector`` picks, e.g.
        ``involvedObject.uid=UID``: the API server filters them, so a person's job costs
        its own events, never a read of everyone's in a shared namespace."""
        try:
            return await self._raw(
                self.core.list_namespaced_event,
                "CoreV1EventList",
                namespace,
                field_selector=field_selector,
            )
        except KubeError as e:
            raise await self._unless_no_namespace(namespace, e) from None

    async def read_log(self, namespace: str, pod: str, container: str) -> str:
        return await self._call(
            self.core.read_namespaced_pod_log, pod, namespace, container=container
        )

    async def open_log_stream(
        self, namespace: str, pod: str, container: str, idle_timeout: float
    ) -> LogStream:
        """Follow a log on the streams' own pool; errors before the first byte raise
        KubeError, here and now."""
        resp = await self._open_stream(
            self._streams().read_namespaced_pod_log,
            idle_timeout,
            pod,
            namespace,
            container=container,
            follow=True,
        )
        return LogStream(resp)

    async def _open_stream(
        self, fn: Any, read_timeout: float, *args: Any, **kwargs: Any
    ) -> aiohttp.ClientResponse:
        """A streamed answer of ``fn`` (a log, a watch), its status checked: errors
        before the first byte raise KubeError here and now. No total timeout (it runs
        as long as it streams), ``read_timeout`` between two reads."""
        timeout = aiohttp.ClientTimeout(
            total=None, connect=self.timeout, sock_connect=self.timeout, sock_read=read_timeout
        )
        try:
            resp = await fn(*args, _preload_content=False, _request_timeout=timeout, **kwargs)
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            raise KubeError(0, f"the Kubernetes API is unreachable ({type(e).__name__})") from None
        if not 200 <= resp.status <= 299:
            try:
                body = await resp.text()
            except (TimeoutError, aiohttp.ClientError):
                body = ""
            finally:
                resp.close()
            raise _error_from_body(resp.status, body or "{}")
        return resp


class WatchStream:
    """A watch's events as raw JSON (``{"type", "object"}``), one per line, until the
    API server ends it (``timeout_seconds``) or the connection breaks."""

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp

    def __aiter__(self) -> WatchStream:
        return self

    async def __anext__(self) -> dict[str, Any]:
        try:
            line = await self._resp.content.readline()
        except (TimeoutError, aiohttp.ClientError):
            line = b""
        if not line:
            self.close()
            raise StopAsyncIteration
        try:
            event = json.loads(line)
        except ValueError:
            self.close()
            raise KubeError(0, "the Kubernetes API sent a watch event that is not JSON") from None
        if not isinstance(event, dict) or not isinstance(event.get("object"), dict):
            self.close()
            raise KubeError(0, "the Kubernetes API sent a watch event without an object")
        return event

    def close(self) -> None:
        self._resp.close()


def _error_from_body(status: int, body: str, reason: str = "") -> KubeError:
    e = ApiException(status=status, reason=reason)
    e.body = body
    return _error(e)


class LogStream:
    """A followed log's chunks as they come; the stream ends where the connection does.

    A class, not a generator: :meth:`close` must work from any task at any moment (a
    client that went away, a stream that reached its time limit), and a generator
    suspended at its ``yield`` cannot be finalized from outside until it is collected.
    """

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp

    def __aiter__(self) -> LogStream:
        return self

    async def __anext__(self) -> bytes:
        try:
            chunk = await self._resp.content.readany()
        except (TimeoutError, aiohttp.ClientError):
            chunk = b""  # idle past log_idle_timeout, or the connection broke
        if not chunk:
            self.close()
            raise StopAsyncIteration
        return chunk

    @property
    def closed(self) -> bool:
        return self._resp.closed

    def close(self) -> None:
        """Drop the connection (the API server stops following); idempotent."""
        self._resp.close()
