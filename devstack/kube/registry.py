"""What the API server does with a request, between HTTP and the store.

Create (generateName, defaults, admission, validation), replace, patch, delete
(graceful pods, finalizers, orphaning, terminating namespaces) and list at a
resourceVersion. The HTTP layer (api.py) and the in-process control surface both
go through here, so objects seeded by tests get the same treatment as real requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import ipaddress
import json
import logging
import secrets as _secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from . import admission, quota, rbac_escalation, schema, validation
from .errors import (
    AlreadyExists,
    BadRequest,
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    NotFound,
    UnsupportedMediaType,
    success_status,
)
from .patch import PatchError, json_patch, merge_patch, strategic_merge_patch
from .resources import KINDS, Kind, kind_of
from .store import Event, Store, now_iso
from .validation import invalid_error

log = logging.getLogger(__name__)

Obj = dict[str, Any]

NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # the real server's generateName alphabet
SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/12")
JOB_ORPHAN_WARNING = (
    "child pods are preserved by default when jobs are deleted; set propagationPolicy=Background "
    "to remove them or set propagationPolicy=Orphan to suppress this warning"
)
NAMESPACE_MISMATCH = (
    "the namespace of the provided object does not match the namespace sent on the request"
)
PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)
SERVER_METADATA = (
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "selfLink",
    "managedFields",
)


def present(kind: Kind, obj: Obj) -> Obj:
    """The object as the API answers it: apiVersion and kind first."""
    out = {"kind": kind.kind, "apiVersion": kind.api_version}
    out.update({k: v for k, v in obj.items() if k not in ("kind", "apiVersion")})
    return out


def list_item(obj: Obj) -> Obj:
    """Items of a typed list carry no kind/apiVersion on the real server."""
    return {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}


@dataclass
class DeleteOptions:
    grace_period_seconds: int | None = None
    propagation_policy: str | None = None
    orphan_dependents: bool | None = None
    dry_run: bool = False
    preconditions: dict = field(default_factory=dict)

    @classmethod
    def parse(cls, query: dict[str, str], body: Obj | None) -> DeleteOptions:
        opts = cls()
        if "gracePeriodSeconds" in query:
            opts.grace_period_seconds = _int_param(
                query["gracePeriodSeconds"], "gracePeriodSeconds"
            )
        opts.propagation_policy = query.get("propagationPolicy") or None
        if "orphanDependents" in query:
            opts.orphan_dependents = query["orphanDependents"].lower() in ("1", "t", "true")
        opts.dry_run = "All" in query.get("dryRun", "")
        body = body or {}
        if not isinstance(body, dict):
            raise BadRequest("DeleteOptions must be a JSON object")
        if body.get("gracePeriodSeconds") is not None:
            opts.grace_period_seconds = _int_param(body["gracePeriodSeconds"], "gracePeriodSeconds")
        if body.get("propagationPolicy"):
            opts.propagation_policy = body["propagationPolicy"]
        if body.get("orphanDependents") is not None:
            opts.orphan_dependents = bool(body["orphanDependents"])
        if "All" in (body.get("dryRun") or []):
            opts.dry_run = True
        opts.preconditions = body.get("preconditions") or {}
        if opts.propagation_policy not in (None, "Orphan", "Background", "Foreground"):
            raise BadRequest(
                f'Unsupported value: "{opts.propagation_policy}": supported values: "Orphan", '
                f'"Background", "Foreground"'
            )
        return opts


def _int_param(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BadRequest(f"invalid value for {name}: {value!r}") from None


def _deletion_time(grace: int) -> str:
    return (datetime.now(UTC) + timedelta(seconds=grace)).strftime("%Y-%m-%dT%H:%M:%SZ")


class Registry:
    """The API server's behaviour over one store."""

    def __init__(self, store: Store, *, strict_schema: bool = False) -> None:
        self.store = store
        self.strict_schema = strict_schema
        self._tasks: set[asyncio.Task] = set()
        # the admission plugins of the stand-in's profile (None: none at all)
        self.admission: admission.Admission | None = None

    # -- reads ---------------------------------------------------------------------
    def get(self, kind: Kind, namespace: str, name: str) -> Obj:
        return present(kind, self.store.get(kind.resource, namespace, name))

    def list(
        self,
        kind: Kind,
        namespace: str | None,
        predicate: Callable[[Obj], bool],
        resource_version: str | None = None,
        match: str | None = None,
    ) -> tuple[list[Obj], int]:
        """Objects matching ``predicate`` and the list's resourceVersion."""
        if match and not resource_version:
            raise BadRequest("resourceVersionMatch is forbidden unless resourceVersion is provided")
        if match not in (None, "", "Exact", "NotOlderThan"):
            raise BadRequest(
                f'Unsupported value: "{match}": supported values: "Exact", "NotOlderThan"'
            )
        if match == "Exact":
            if resource_version == "0":
                raise BadRequest(
                    'resourceVersionMatch "exact" is forbidden for resourceVersion "0"'
                )
            rv = _int_param(resource_version, "resourceVersion")
            if rv < self.store.resource_version:
                items = self._list_at(kind, namespace, rv)
                return [list_item(o) for o in items if predicate(o)], rv
        items, rv = self.store.list(kind.resource, namespace, predicate)
        return [list_item(o) for o in items], rv

    def _list_at(self, kind: Kind, namespace: str | None, rv: int) -> list[Obj]:
        """The objects as they were at ``rv``, rewound from the event log."""
        try:
            events = self.store.events_since(rv, kind.resource, namespace)
        except Gone:
            raise Gone("The resourceVersion for the provided list is too old.") from None
        items, _ = self.store.list(kind.resource, namespace)
        state = {(o["metadata"].get("namespace", ""), o["metadata"]["name"]): o for o in items}
        for e in reversed(events):
            key = (e.namespace, e.obj["metadata"]["name"])
            if e.type == "ADDED":
                state.pop(key, None)
            elif e.prev is not None:
                state[key] = copy.deepcopy(e.prev)
        return [state[k] for k in sorted(state)]

    # -- create --------------------------------------------------------------------------
    def create(
        self,
        kind: Kind,
        namespace: str | None,
        body: Any,
        *,
        dry_run: bool = False,
        strict: bool = False,
        keep_status: bool = False,
    ) -> Obj:
        obj = self._decode(kind, body)
        meta = obj.setdefault("metadata", {})
        if meta.get("resourceVersion"):
            raise BadRequest("resourceVersion should not be set on objects to be created")
        ns = self._request_namespace(kind, namespace, meta)
        for key in SERVER_METADATA:
            meta.pop(key, None)
        validation.decode_errors(kind, obj)
        if not keep_status and "status" in kind.subresources:
            obj.pop("status", None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = self._generate_name(kind, ns, meta["generateName"])
        if ns:
            self._admit_namespace(kind, ns, meta.get("name", ""))
        uid = str(uuid.uuid4())
        validation.apply_defaults(kind, obj, uid=uid)
        self._server_fields(kind, obj, uid)
        request = admission.Request(
            "CREATE", kind, ns, meta.get("name", ""), obj, None, admission.current_user(),
            dry_run=dry_run,
        )  # fmt: skip
        if self.admission is not None:
            self.admission.mutate(request)
        # RBAC escalation prevention (every profile; RBAC kinds only): rbac_escalation.py
        rbac_escalation.check(self.store, request)
        causes = validation.validate(kind, obj)
        if causes:
            raise invalid_error(kind, meta.get("name", ""), causes)
        if kind.kind == "Pod":
            self._admit_service_account(ns, obj)
        if self.admission is not None:
            self.admission.validate(request)
        if strict or self.strict_schema:
            schema.check(kind, present(kind, obj))
        if dry_run:
            if self.store.exists(kind.resource, ns, meta["name"]):
                raise AlreadyExists(
                    f'{kind.qualified} "{meta["name"]}" already exists',
                    details={"name": meta["name"], "group": kind.group, "kind": kind.plural},
                )
            meta["uid"], meta["creationTimestamp"] = uid, now_iso()
            return present(kind, obj)
        stored = self.store.create(kind.resource, ns, present(kind, obj), uid=uid)
        if kind.kind == "Namespace":
            self._create_default_service_account(meta["name"])
        return present(kind, stored)

    def _decode(self, kind: Kind, body: Any) -> Obj:
        if not isinstance(body, dict):
            raise BadRequest(
                f'{kind.kind} in version "{kind.version}" cannot be handled as a {kind.kind}: the '
                f"body must be a JSON object"
            )
        obj = copy.deepcopy(body)
        api_version, k = obj.get("apiVersion"), obj.get("kind")
        if api_version and api_version != kind.api_version:
            raise BadRequest(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({kind.api_version})"
            )
        if k and k != kind.kind:
            raise BadRequest(
                f"the kind in the data ({k}) does not match the expected kind ({kind.kind})"
            )
        obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
        if not isinstance(obj.get("metadata", {}), dict):
            raise BadRequest(
                f'{kind.kind} in version "{kind.version}" cannot be handled as a {kind.kind}: '
                f"metadata must be an object"
            )
        return obj

    def _request_namespace(self, kind: Kind, namespace: str | None, meta: Obj) -> str:
        if not kind.namespaced:
            meta.pop("namespace", None)
            return ""
        given = meta.get("namespace")
        if given and namespace and given != namespace:
            raise BadRequest(NAMESPACE_MISMATCH)
        ns = namespace or given
        if not ns:
            raise BadRequest("an empty namespace may not be set during creation")
        meta["namespace"] = ns
        return ns

    def _generate_name(self, kind: Kind, ns: str, prefix: str) -> str:
        prefix = prefix[:58]
        for _ in range(8):
            name = prefix + "".join(_secrets.choice(NAME_ALPHABET) for _ in range(5))
            if not self.store.exists(kind.resource, ns, name):
                return name
        raise AlreadyExists(
            f'{kind.qualified} "{name}" already exists',
            details={"name": name, "group": kind.group, "kind": kind.plural},
        )

    def _admit_namespace(self, kind: Kind, ns: str, name: str) -> None:
        """NamespaceLifecycle admission: the namespace must exist and not be terminating."""
        try:
            nsobj = self.store.get("v1/namespaces", "", ns)
        except NotFound:
            raise NotFound(
                f'namespaces "{ns}" not found', details={"name": ns, "kind": "namespaces"}
            ) from None
        if (nsobj.get("status") or {}).get("phase") == "Terminating":
            msg = f"unable to create new content in namespace {ns} because it is being terminated"
            raise Forbidden(
                f'{kind.qualified} "{name}" is forbidden: {msg}',
                details={
                    "name": name,
                    "group": kind.group,
                    "kind": kind.plural,
                    "causes": [
                        {
                            "reason": "NamespaceTerminating",
                            "message": f"namespace {ns} is being terminated",
                            "field": "metadata.namespace",
                        }
                    ],
                },
            )

    def _admit_service_account(self, ns: str, pod: Obj) -> None:
        sa = pod["spec"].get("serviceAccountName") or "default"
        if not self.store.exists("v1/serviceaccounts", ns, sa):
            name = pod["metadata"].get("name", "")
            raise Forbidden(
                f'pods "{name}" is forbidden: error looking up service account {ns}/{sa}: '
                f'serviceaccount "{sa}" not found',
                details={"name": name, "kind": "pods"},
            )

    def _server_fields(self, kind: Kind, obj: Obj, uid: str) -> None:
        """Fields other components fill at once: cluster IPs, a provisioned volume."""
        if kind.kind == "Service":
            spec = obj["spec"]
            if spec.get("type") == "ExternalName" or spec.get("clusterIP") == "None":
                spec.setdefault("clusterIPs", [spec["clusterIP"]] if spec.get("clusterIP") else [])
                return
            used = self._used_cluster_ips()
            want = spec.get("clusterIP")
            if want:
                if want in used:
                    name = obj["metadata"].get("name", "")
                    raise invalid_error(
                        kind,
                        name,
                        [
                            validation.invalid(
                                "spec.clusterIPs",
                                want,
                                f"failed to allocate IP {want}: provided IP is already allocated",
                            )
                        ],
                    )
            else:
                want = next(
                    str(ip)
                    for ip in SERVICE_CIDR.hosts()
                    if ip.packed[-1] >= 10 and str(ip) not in used
                )
            spec["clusterIP"], spec["clusterIPs"] = want, [want]
        elif kind.kind == "PersistentVolumeClaim":
            # a dynamic provisioner with Immediate binding
            spec = obj["spec"]
            spec.setdefault("volumeName", f"pvc-{uid}")
            storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
            obj["status"] = {
                "phase": "Bound",
                "accessModes": list(spec.get("accessModes") or []),
                "capacity": {"storage": storage},
            }
        elif kind.kind == "ResourceQuota":
            obj["status"] = quota.current_status(self.store, obj)  # issue 12: real usage

    def _used_cluster_ips(self) -> set[str]:
        items, _ = self.store.list("v1/services")
        return {(s.get("spec") or {}).get("clusterIP") for s in items}

    def _create_default_service_account(self, ns: str) -> None:
        if not self.store.exists("v1/serviceaccounts", ns, "default"):
            self.store.create(
                "v1/serviceaccounts",
                ns,
                {
                    "apiVersion": "v1",
                    "kind": "ServiceAccount",
                    "metadata": {"name": "default", "namespace": ns},
                },
            )

    # -- replace and patch -----------------------------------------------------------------
    def replace(
        self,
        kind: Kind,
        namespace: str,
        name: str,
        body: Any,
        *,
        subresource: str | None = None,
        strict: bool = False,
    ) -> Obj:
        obj = self._decode(kind, body)
        meta = obj["metadata"]
        if meta.get("name") and meta["name"] != name:
            raise BadRequest(
                f"the name of the object ({meta['name']}) does not match the name on the URL "
                f"({name})"
            )
        meta["name"] = name
        if kind.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise BadRequest(NAMESPACE_MISMATCH)
            meta["namespace"] = namespace
        old = self.store.get(kind.resource, namespace, name)
        validation.decode_errors(kind, obj)
        return self._update(kind, namespace, old, obj, subresource=subresource, strict=strict)

    def patch(
        self,
        kind: Kind,
        namespace: str,
        name: str,
        content_type: str,
        raw: bytes,
        *,
        subresource: str | None = None,
        strict: bool = False,
    ) -> Obj:
        ctype = content_type.split(";")[0].strip().lower()
        if ctype not in PATCH_TYPES:
            raise UnsupportedMediaType(
                f"the body of the request was in an unknown format - accepted media types "
                f"include: {', '.join(PATCH_TYPES)}"
            )
        try:
            body = json.loads(raw or b"null")
        except ValueError as e:
            raise BadRequest(f"error decoding patch: {e}") from None
        old = self.store.get(kind.resource, namespace, name)
        current = present(kind, old)
        try:
            if ctype == "application/json-patch+json":
                if not isinstance(body, list):
                    raise BadRequest(
                        "json: cannot unmarshal object into Go value of type jsonpatch.Patch"
                    )
                new = json_patch(current, body)
            elif ctype == "application/merge-patch+json":
                if not isinstance(body, dict):
                    raise BadRequest(
                        "json: cannot unmarshal array into Go value of type map[string]interface {}"
                    )
                new = merge_patch(current, body)
            else:
                if not isinstance(body, dict):
                    raise BadRequest(
                        "json: cannot unmarshal array into Go value of type map[string]interface {}"
                    )
                new = strategic_merge_patch(current, body)
        except PatchError as e:
            raise validation_patch_error(str(e)) from None
        if not isinstance(new, dict):
            raise BadRequest("the patched object is not a JSON object")
        new = self._decode(kind, new)
        new["metadata"]["name"], new_meta = name, new["metadata"]
        if kind.namespaced:
            new_meta["namespace"] = namespace
        validation.decode_errors(kind, new)
        return self._update(kind, namespace, old, new, subresource=subresource, strict=strict)

    def _update(
        self,
        kind: Kind,
        namespace: str,
        old: Obj,
        obj: Obj,
        *,
        subresource: str | None,
        strict: bool,
    ) -> Obj:
        meta, old_meta = obj["metadata"], old["metadata"]
        if subresource == "status":
            status = obj.get("status")
            obj = copy.deepcopy(old)
            obj["status"] = status
            if meta.get("resourceVersion"):
                obj["metadata"]["resourceVersion"] = meta["resourceVersion"]
            meta = obj["metadata"]
        elif "status" in kind.subresources:
            if "status" in old:
                obj["status"] = copy.deepcopy(old["status"])
            else:
                obj.pop("status", None)
        for key in SERVER_METADATA:
            if key in old_meta:
                meta[key] = old_meta[key]
            else:
                meta.pop(key, None)
        if subresource != "status":
            validation.apply_defaults(kind, obj, create=False)
            if kind.kind == "Service":
                spec, old_spec = obj.setdefault("spec", {}), old.get("spec") or {}
                for key in ("clusterIP", "clusterIPs"):
                    if key not in spec and key in old_spec:
                        spec[key] = old_spec[key]
            if kind.kind == "Namespace":
                obj["spec"] = obj.get("spec") or old.get("spec") or {}
        request = admission.Request(
            "UPDATE", kind, namespace, meta.get("name", ""), obj, old, admission.current_user(),
            subresource=subresource or "",
        )  # fmt: skip
        if self.admission is not None:
            self.admission.mutate(request)
        # RBAC escalation prevention (every profile; RBAC kinds only): rbac_escalation.py
        rbac_escalation.check(self.store, request)
        causes = validation.validate(kind, obj) + validation.update_causes(kind, obj, old)
        if causes:
            raise invalid_error(kind, meta.get("name", ""), causes)
        if self.admission is not None:
            self.admission.validate(request)
        if strict or self.strict_schema:
            schema.check(kind, present(kind, obj))
        updated = self.store.update(kind.resource, namespace, present(kind, obj))
        if (
            updated["metadata"].get("deletionTimestamp")
            and not updated["metadata"].get("finalizers")
            and kind.kind not in ("Pod", "Namespace")
        ):
            # the last finalizer is gone: the object goes
            return present(kind, self.store.delete(kind.resource, namespace, meta["name"]))
        return present(kind, updated)

    # -- delete --------------------------------------------------------------------------
    def delete(
        self, kind: Kind, namespace: str, name: str, opts: DeleteOptions
    ) -> tuple[Obj, list[str]]:
        """Delete one object; returns the answer body and Warning texts."""
        obj = self.store.get(kind.resource, namespace, name)
        meta = obj["metadata"]
        pre = opts.preconditions
        if pre.get("uid") and pre["uid"] != meta.get("uid"):
            raise Conflict(
                f'Operation cannot be fulfilled on {kind.qualified} "{name}": Precondition '
                f"failed: UID in precondition: {pre['uid']}, UID in object meta: {meta.get('uid')}",
                details={"name": name, "group": kind.group, "kind": kind.plural},
            )
        if pre.get("resourceVersion") and pre["resourceVersion"] != meta.get("resourceVersion"):
            raise Conflict(
                f'Operation cannot be fulfilled on {kind.qualified} "{name}": Precondition '
                f"failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                f"ResourceVersion in object meta: {meta.get('resourceVersion')}",
                details={"name": name, "group": kind.group, "kind": kind.plural},
            )
        if opts.dry_run:
            return present(kind, obj), []
        warnings: list[str] = []
        policy = opts.propagation_policy
        if policy is None and opts.orphan_dependents is not None:
            policy = "Orphan" if opts.orphan_dependents else "Background"
        if policy is None and kind.kind == "Job":
            policy = "Orphan"  # batch/v1 Jobs orphan their pods unless told otherwise
            warnings.append(JOB_ORPHAN_WARNING)
        if kind.kind == "Namespace":
            return self._terminate_namespace(name), warnings
        if kind.kind == "Pod":
            graceful = self._graceful_pod_delete(obj, opts)
            if graceful is not None:
                return present(kind, graceful), warnings
        if policy == "Orphan":
            self._orphan_dependents(namespace, meta["uid"])
        if meta.get("finalizers"):
            if not meta.get("deletionTimestamp"):
                obj = self.store.mutate(kind.resource, namespace, name, _mark_deleted(0))
            return present(kind, obj), warnings
        deleted = self.store.delete(kind.resource, namespace, name)
        if kind.return_deleted:
            return present(kind, deleted), warnings
        return validation_success(kind, name, meta.get("uid")), warnings

    def _graceful_pod_delete(self, pod: Obj, opts: DeleteOptions) -> Obj | None:
        """Mark a running pod for the kubelet; None when it goes at once."""
        spec, meta = pod.get("spec") or {}, pod["metadata"]
        grace = opts.grace_period_seconds
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", 30)
        grace = max(int(grace), 0)
        phase = (pod.get("status") or {}).get("phase")
        if not spec.get("nodeName") or grace == 0 or phase in ("Succeeded", "Failed"):
            return None
        current = meta.get("deletionGracePeriodSeconds")
        if meta.get("deletionTimestamp") and current is not None and current <= grace:
            return pod
        return self.store.update(
            "v1/pods",
            meta["namespace"],
            _with(pod, _mark_deleted(grace)),
            check_rv=False,
            bump_generation=False,
        )

    def _orphan_dependents(self, namespace: str, owner_uid: str) -> None:
        for kind in KINDS:
            if not kind.namespaced and namespace:
                continue
            items, _ = self.store.list(kind.resource, namespace or None)
            for item in items:
                refs = item["metadata"].get("ownerReferences") or []
                if any(r.get("uid") == owner_uid for r in refs):

                    def strip(o: Obj, uid: str = owner_uid) -> None:
                        kept = [
                            r
                            for r in o["metadata"].get("ownerReferences") or []
                            if r.get("uid") != uid
                        ]
                        if kept:
                            o["metadata"]["ownerReferences"] = kept
                        else:
                            o["metadata"].pop("ownerReferences", None)

                    with contextlib.suppress(NotFound):
                        self.store.mutate(
                            kind.resource,
                            item["metadata"].get("namespace", ""),
                            item["metadata"]["name"],
                            strip,
                        )

    def delete_collection(
        self,
        kind: Kind,
        namespace: str | None,
        predicate: Callable[[Obj], bool],
        opts: DeleteOptions,
    ) -> tuple[list[Obj], int]:
        items, _ = self.store.list(kind.resource, namespace, predicate)
        out = []
        for item in items:
            m = item["metadata"]
            with contextlib.suppress(NotFound):
                body, _ = self.delete(kind, m.get("namespace", ""), m["name"], opts)
                out.append(list_item(body if body.get("kind") == kind.kind else item))
        return out, self.store.resource_version

    # -- namespaces -------------------------------------------------------------------
    def _terminate_namespace(self, name: str) -> Obj:
        ns_kind = kind_of("v1/namespaces")
        obj = self.store.get("v1/namespaces", "", name)
        if (obj.get("status") or {}).get("phase") != "Terminating":

            def mark(o: Obj) -> None:
                o["metadata"]["deletionTimestamp"] = now_iso()
                o["metadata"]["deletionGracePeriodSeconds"] = 0
                o["status"] = {"phase": "Terminating"}

            obj = self.store.mutate("v1/namespaces", "", name, mark)
            task = asyncio.get_running_loop().create_task(self._finalize_namespace(name))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return present(ns_kind, obj)

    async def _finalize_namespace(self, name: str) -> None:
        """The namespace controller: delete everything inside, then the namespace."""
        changed = asyncio.Event()

        def on_change(event: Event) -> None:
            if event.namespace == name:
                changed.set()

        unsubscribe = self.store.add_listener(on_change)
        try:
            while True:
                changed.clear()
                remaining = 0
                for kind in KINDS:
                    if not kind.namespaced:
                        continue
                    items, _ = self.store.list(kind.resource, name)
                    remaining += len(items)
                    for item in items:
                        if item["metadata"].get("deletionTimestamp"):
                            continue
                        with contextlib.suppress(NotFound):
                            self.delete(
                                kind,
                                name,
                                item["metadata"]["name"],
                                DeleteOptions(propagation_policy="Background"),
                            )
                if remaining == 0:
                    with contextlib.suppress(NotFound):
                        self.store.delete("v1/namespaces", "", name)
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), 1.0)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a background task must log, not vanish
            log.exception("finalizing namespace %s failed", name)
        finally:
            unsubscribe()

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _mark_deleted(grace: int) -> Callable[[Obj], None]:
    def mark(o: Obj) -> None:
        o["metadata"]["deletionTimestamp"] = _deletion_time(grace)
        o["metadata"]["deletionGracePeriodSeconds"] = grace

    return mark


def _with(obj: Obj, fn: Callable[[Obj], None]) -> Obj:
    obj = copy.deepcopy(obj)
    fn(obj)
    return obj


def validation_patch_error(message: str) -> Invalid:
    return Invalid(f"the server rejected our request due to an error in our request: {message}")


def validation_success(kind: Kind, name: str, uid: str | None) -> Obj:
    return success_status(name, kind.group, kind.plural, uid)
