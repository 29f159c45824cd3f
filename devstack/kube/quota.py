"""ResourceQuota: the admission plugin that refuses what a namespace's quotas do not allow,
and the quota controller that keeps ``status.used`` current (both upstream Kubernetes, so
every profile), answering like the real ones.

Admission (``ResourceQuota``, the last validating plugin upstream) looks at every create
and update of a namespaced object (subresources aside). For each quota of the namespace
that tracks something the object uses, a pod must name a request or limit for each of
``cpu``/``memory`` the quota tracks (``failed quota: NAME: must specify limits.cpu for: x;
requests.memory for: x``), and the object's usage (on update: what it adds) must fit
(``exceeded quota: NAME, requested: limits.cpu=2, used: limits.cpu=31, limited:
limits.cpu=32``), both 403 Forbidden. Like the real plugin, an admitted object's usage is
written into the quota's ``status.used`` before the object is stored, so a client reads
it right after its request.

The controller (:class:`QuotaStatus`) recomputes ``status.used`` of a namespace's quotas
after every change of what they track, whoever wrote it (requests, the kubelet's phase
changes, the Job controller's pods): a store listener queues the namespace and the
recompute runs on the loop's next turn (never inside the listener). ``status.hard``
mirrors ``spec.hard``.

Usage follows the upstream evaluators: pods count compute (``requests.*``, ``limits.*``,
``cpu``/``memory``/``ephemeral-storage`` meaning requests, ``pods``) only until they are
Succeeded or Failed, with init containers taken at their maximum as the scheduler does;
``count/<resource>[.<group>]`` counts every object of a kind; ``services``, ``secrets``,
``configmaps``, ``persistentvolumeclaims``, ``resourcequotas``, ``requests.storage`` (and
per storage class) as upstream. Quantities keep Kubernetes' semantics and print as the API
server prints them ("1500m", "1536Mi", "3"). Quota scopes (``Terminating``,
``NotTerminating``, ``BestEffort``, ``NotBestEffort``, ``PriorityClass``) select pods.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import Any

from valeria_hub.quantity import parse_quantity

from . import validation
from .admission import Admission, Request
from .errors import BadRequest, Forbidden, NotFound
from .resources import KINDS, Kind, kind_of
from .store import Event, Store

log = logging.getLogger(__name__)

Obj = dict[str, Any]

QUOTAS = "v1/resourcequotas"
BINARY, DECIMAL, EXPONENT = "BinarySI", "DecimalSI", "DecimalExponent"
_BINARY_SUFFIXES = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")
_DECIMAL_SUFFIXES = dict(
    zip(range(-9, 21, 3), ("n", "u", "m", "", "k", "M", "G", "T", "P", "E"), strict=True)
)
_QUANTITY_RE = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
CANNOT_DECODE = 'ResourceQuota in version "v1" cannot be handled as a ResourceQuota'
QUANTITY_MSG = (
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)

COMPUTE = ("cpu", "memory", "ephemeral-storage")
POD_RESOURCES = frozenset(
    {"pods", *COMPUTE, *(f"requests.{r}" for r in COMPUTE), *(f"limits.{r}" for r in COMPUTE)}
)
# a quota on these makes every container name a value for them (upstream's "mistake")
CONSTRAINED = frozenset(
    {"cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory"}
)
LEGACY_COUNTS = {
    "Service": "services",
    "Secret": "secrets",
    "ConfigMap": "configmaps",
    "PersistentVolumeClaim": "persistentvolumeclaims",
    "ResourceQuota": "resourcequotas",
}
STORAGE_CLASS = ".storageclass.storage.k8s.io/"
TERMINAL = ("Succeeded", "Failed")


# -- quantities ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Amount:
    """A quantity and the format it prints in, as Go's resource.Quantity keeps it."""

    value: Decimal
    fmt: str = DECIMAL

    def __add__(self, other: Amount) -> Amount:
        # a sum prints like its first non-zero term
        return Amount(self.value + other.value, other.fmt if self.value == 0 else self.fmt)

    def __str__(self) -> str:
        return format_amount(self)


ZERO = Amount(Decimal(0))
ONE = Amount(Decimal(1))


def amount(raw: Any) -> Amount:
    """A quantity from a manifest; ValueError for what the API server would refuse."""
    value = parse_quantity(raw)
    text = str(raw).strip()
    if isinstance(raw, str) and text.endswith(_BINARY_SUFFIXES[1:]):
        return Amount(value, BINARY)
    if isinstance(raw, str) and re.search(r"[eE][-+]?[0-9]+$", text):
        return Amount(value, EXPONENT)
    return Amount(value, DECIMAL)


def format_amount(a: Amount) -> str:
    """How the API server prints a quantity: "1500m", "1536Mi", "2", "1k"."""
    value = a.value
    if value == 0:
        return "0"
    sign, value = ("-", -value) if value < 0 else ("", value)
    if a.fmt == BINARY and value >= 1024 and value == value.to_integral_value():
        number, power = int(value), 0
        while power < len(_BINARY_SUFFIXES) - 1 and number % 1024 == 0:
            number, power = number // 1024, power + 1
        return f"{sign}{number}{_BINARY_SUFFIXES[power]}"
    # mantissa x 10^exponent, exponent a multiple of 3, the largest with a whole mantissa
    number = int((value * Decimal(10) ** 9).to_integral_value(rounding=ROUND_CEILING))
    exponent = -9
    while exponent < 18 and number % 1000 == 0:
        number, exponent = number // 1000, exponent + 3
    if a.fmt == EXPONENT:
        return f"{sign}{number}" + (f"e{exponent}" if exponent else "")
    return f"{sign}{number}{_DECIMAL_SUFFIXES[exponent]}"


def _amounts(resources: Any) -> dict[str, Amount]:
    out = {}
    for name, raw in (resources or {}).items() if isinstance(resources, dict) else ():
        with contextlib.suppress(ValueError):  # validation's business, not quota's
            out[name] = amount(raw)
    return out


def pretty(items: dict[str, Amount]) -> str:
    """``limits.cpu=2,pods=1``: how quota messages list resources."""
    return ",".join(f"{k}={items[k]}" for k in sorted(items))


# -- what one object uses (pure) --------------------------------------------------------------


def count_name(kind: Kind) -> str:
    """``count/pods``, ``count/jobs.batch``: the object count resource of a kind."""
    return f"count/{kind.qualified}"


def _extended(name: str) -> bool:
    """An extended resource (``example.com/gpu``): namespaced, not kubernetes.io's own."""
    return "/" in name and "kubernetes.io/" not in name and not name.startswith("requests.")


def tracks(kind: Kind, resource: str) -> bool:
    """Whether objects of ``kind`` use ``resource`` (a quota's ``spec.hard`` key)."""
    if resource == count_name(kind):
        return True
    if kind.kind == "Pod":
        return (
            resource in POD_RESOURCES
            or resource.startswith(("hugepages-", "requests.hugepages-"))
            or (resource.startswith("requests.") and _extended(resource[len("requests.") :]))
        )
    if kind.kind == "Service":
        return resource in ("services", "services.loadbalancers", "services.nodeports")
    if kind.kind == "PersistentVolumeClaim":
        return resource in ("persistentvolumeclaims", "requests.storage") or (
            STORAGE_CLASS in resource
            and resource.endswith(("/persistentvolumeclaims", "/requests.storage"))
        )
    return resource == LEGACY_COUNTS.get(kind.kind)


def _add_into(total: dict[str, Amount], items: dict[str, Amount]) -> None:
    for name, a in items.items():
        total[name] = total[name] + a if name in total else a


def _max_into(total: dict[str, Amount], items: dict[str, Amount]) -> None:
    for name, a in items.items():
        if name not in total or a.value > total[name].value:
            total[name] = a


def pod_resources(spec: Obj, which: str) -> dict[str, Amount]:
    """The pod's effective ``requests`` or ``limits``: containers and sidecars summed,
    each regular init container (with the sidecars started before it) at its maximum."""
    total: dict[str, Amount] = {}
    for c in spec.get("containers") or []:
        _add_into(total, _amounts((c.get("resources") or {}).get(which)))
    sidecars: dict[str, Amount] = {}
    init_max: dict[str, Amount] = {}
    for c in spec.get("initContainers") or []:
        own = _amounts((c.get("resources") or {}).get(which))
        if c.get("restartPolicy") == "Always":
            _add_into(total, own)
            _add_into(sidecars, own)
            step = dict(sidecars)
        else:
            step = dict(own)
            _add_into(step, sidecars)
        _max_into(init_max, step)
    _max_into(total, init_max)
    if which == "requests":
        _add_into(total, _amounts(spec.get("overhead")))
    return total


def compute_usage(requests: dict[str, Amount], limits: dict[str, Amount]) -> dict[str, Amount]:
    """Quota names of a pod's (or a container's) requests and limits."""
    out: dict[str, Amount] = {}
    for r in COMPUTE:
        if r in requests:
            out[r] = out[f"requests.{r}"] = requests[r]
        if r in limits:
            out[f"limits.{r}"] = limits[r]
    for name, a in requests.items():
        if name.startswith("hugepages-"):
            out[name] = out[f"requests.{name}"] = a
        elif _extended(name):
            out[f"requests.{name}"] = a
    return out


def _parse_time(value: Any) -> datetime | None:
    try:
        return datetime.strptime(str(value), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def pod_charged(pod: Obj, now: datetime) -> bool:
    """Pods count for compute (and ``pods``) until they end, or hang in deletion too long."""
    if (pod.get("status") or {}).get("phase") in TERMINAL:
        return False
    meta = pod.get("metadata") or {}
    deleted = _parse_time(meta.get("deletionTimestamp"))
    grace = meta.get("deletionGracePeriodSeconds")
    return not (deleted and isinstance(grace, int) and now > deleted + timedelta(seconds=grace))


def usage(kind: Kind, obj: Obj, now: datetime) -> dict[str, Amount]:
    """Everything one object uses, by quota resource name."""
    out = {count_name(kind): ONE}
    spec = obj.get("spec") or {}
    if kind.kind == "Pod":
        if pod_charged(obj, now):
            out["pods"] = ONE
            out.update(
                compute_usage(pod_resources(spec, "requests"), pod_resources(spec, "limits"))
            )
    elif kind.kind in LEGACY_COUNTS:
        out[LEGACY_COUNTS[kind.kind]] = ONE
    if kind.kind == "Service":
        ports = Amount(Decimal(len(spec.get("ports") or [])))
        if spec.get("type") == "LoadBalancer":
            out["services.loadbalancers"] = ONE
            if spec.get("allocateLoadBalancerNodePorts") is not False:
                out["services.nodeports"] = ports
        elif spec.get("type") == "NodePort":
            out["services.nodeports"] = ports
    elif kind.kind == "PersistentVolumeClaim":
        storage = _amounts((spec.get("resources") or {}).get("requests")).get("storage", ZERO)
        out["requests.storage"] = storage
        sc = spec.get("storageClassName") or (
            (obj.get("metadata") or {}).get("annotations") or {}
        ).get("volume.beta.kubernetes.io/storage-class")
        if sc:
            out[f"{sc}{STORAGE_CLASS}persistentvolumeclaims"] = ONE
            out[f"{sc}{STORAGE_CLASS}requests.storage"] = storage
    return out


# -- scopes (pure) ------------------------------------------------------------------------


def scopes_of(quota: Obj) -> list[tuple[str, str, tuple[str, ...]]]:
    """(scopeName, operator, values) of ``spec.scopes`` and ``spec.scopeSelector``."""
    spec = quota.get("spec") or {}
    out = [(str(s), "Exists", ()) for s in spec.get("scopes") or []]
    for e in (spec.get("scopeSelector") or {}).get("matchExpressions") or []:
        out.append((str(e.get("scopeName")), str(e.get("operator")), tuple(e.get("values") or [])))
    return out


def _scope_holds(scope: str, pod: Obj) -> bool:
    spec = pod.get("spec") or {}
    if scope in ("Terminating", "NotTerminating"):
        terminating = isinstance(spec.get("activeDeadlineSeconds"), int)
        return terminating if scope == "Terminating" else not terminating
    if scope in ("BestEffort", "NotBestEffort"):
        best_effort = validation.qos_class(spec) == "BestEffort"
        return best_effort if scope == "BestEffort" else not best_effort
    return False  # CrossNamespacePodAffinity and unknown scopes: not modelled


def matches_scopes(kind: Kind, obj: Obj, scopes: list[tuple[str, str, tuple[str, ...]]]) -> bool:
    """A quota with scopes covers pods in all of them only (as the upstream evaluators)."""
    if not scopes:
        return True
    if kind.kind != "Pod":
        return False
    for scope, operator, values in scopes:
        if scope == "PriorityClass":
            pc = (obj.get("spec") or {}).get("priorityClassName") or ""
            held = {
                "In": pc in values,
                "NotIn": pc not in values,
                "Exists": bool(pc),
                "DoesNotExist": not pc,
            }.get(operator, False)
        else:
            held = _scope_holds(scope, obj)
            held = (not held) if operator == "DoesNotExist" else held
        if not held:
            return False
    return True


# -- the decisions (pure) --------------------------------------------------------------------


def missing_requests(required: Iterable[str], pod: Obj) -> str | None:
    """``must specify limits.cpu for: a,b; requests.memory for: a``, or None."""
    needed = set(required) & CONSTRAINED
    missing: dict[str, set[str]] = {}
    spec = pod.get("spec") or {}
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        res = c.get("resources") or {}
        have = compute_usage(_amounts(res.get("requests")), _amounts(res.get("limits")))
        for name in needed - set(have):
            missing.setdefault(name, set()).add(str(c.get("name", "")))
    if not missing:
        return None
    return "must specify " + "; ".join(
        f"{name} for: {','.join(sorted(missing[name]))}" for name in sorted(missing)
    )


@dataclass
class QuotaState:
    """One quota as admission weighs it: its limits and what is used now."""

    name: str
    hard: dict[str, Amount]
    used: dict[str, Amount]
    scopes: list[tuple[str, str, tuple[str, ...]]] = field(default_factory=list)


@dataclass(frozen=True)
class QuotaDecision:
    refusal: str | None = None  # the Forbidden message's quota part, when refused
    used: dict[str, dict[str, Amount]] = field(default_factory=dict)  # per quota, when admitted


def check_request(
    kind: Kind, obj: Obj, old: Obj | None, quotas: list[QuotaState], now: datetime
) -> QuotaDecision:
    """Upstream's CheckRequest: constraints of every matching quota first, then the usage
    the request adds (the whole object on create, the increase on update) against each."""
    interesting = []
    for q in quotas:
        restricted = [name for name in q.hard if tracks(kind, name)]
        if not restricted or not matches_scopes(kind, obj, q.scopes):
            continue
        if kind.kind == "Pod":
            missing = missing_requests(restricted, obj)
            if missing:
                return QuotaDecision(f"failed quota: {q.name}: {missing}")
        interesting.append(q)
    if not interesting:
        return QuotaDecision()
    delta = usage(kind, obj, now)
    if old is not None:
        before = usage(kind, old, now)
        delta = {
            n: Amount(max(a.value - before.get(n, ZERO).value, Decimal(0)), a.fmt)
            for n, a in delta.items()
        }
    delta = {n: a for n, a in delta.items() if a.value != 0}
    if not delta:
        return QuotaDecision()
    new_used = {}
    for q in interesting:
        requested = {n: a for n, a in delta.items() if n in q.hard}
        used = dict(q.used)
        for n, a in requested.items():
            used[n] = used.get(n, ZERO) + a
        exceeded = [n for n in requested if used[n].value > q.hard[n].value]
        if exceeded:
            return QuotaDecision(
                f"exceeded quota: {q.name}, "
                f"requested: {pretty({n: requested[n] for n in exceeded})}, "
                f"used: {pretty({n: q.used.get(n, ZERO) for n in exceeded})}, "
                f"limited: {pretty({n: q.hard[n] for n in exceeded})}"
            )
        new_used[q.name] = used
    return QuotaDecision(used=new_used)


def _hard_raw(quota: Obj) -> dict[str, Any]:
    hard = (quota.get("spec") or {}).get("hard")
    return hard if isinstance(hard, dict) else {}


def hard_of(quota: Obj) -> dict[str, Amount]:
    return _amounts(_hard_raw(quota))


def used_by(quota: Obj, objects: Iterable[tuple[Kind, Obj]], now: datetime) -> dict[str, Amount]:
    """What ``objects`` use of each resource of the quota (zero where nothing does)."""
    hard, scopes = hard_of(quota), scopes_of(quota)
    used = {name: ZERO for name in hard}
    for kind, obj in objects:
        if matches_scopes(kind, obj, scopes):
            for name, a in usage(kind, obj, now).items():
                if name in used:
                    used[name] = used[name] + a
    return used


def recorded_used(quota: Obj) -> dict[str, Amount] | None:
    """``status.used`` as amounts, when it covers every resource of ``spec.hard``."""
    used = (quota.get("status") or {}).get("used")
    hard = hard_of(quota)
    if not isinstance(used, dict) or set(hard) - set(used):
        return None
    try:
        return {name: amount(used[name]) for name in hard}
    except ValueError:
        return None


# store -> creations admission has charged, which the controller's listener then skips
_CHARGED: weakref.WeakKeyDictionary[Store, set[tuple[str, str, str]]] = weakref.WeakKeyDictionary()


def status_of(quota: Obj, used: dict[str, Amount]) -> Obj:
    """``status`` as the controller writes it: hard mirrors spec.hard, used as printed."""
    hard = dict(_hard_raw(quota))
    return {"hard": hard, "used": {name: str(used.get(name, ZERO)) for name in hard}}


def hard_error(quota: Obj) -> BadRequest | None:
    """A ``spec.hard`` value that is no quantity: the real server fails to decode the body
    (400, before validation or admission), so this plugin answers first, as that would."""
    for raw in _hard_raw(quota).values():
        try:
            if not _QUANTITY_RE.match(str(raw)):
                raise ValueError(raw)
            amount(raw)
        except ValueError:
            return BadRequest(f"{CANNOT_DECODE}: {QUANTITY_MSG}")
    return None


# -- the store side --------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def namespace_objects(store: Store, namespace: str, names: Iterable[str]) -> list[tuple[Kind, Obj]]:
    """The namespace's objects of every kind that uses one of ``names`` (the stored ones,
    read only: usage is recomputed after every change and copying them all each time
    made the quota controller the slowest part of the stand-in)."""
    names = set(names)
    out = []
    for kind in KINDS:
        if kind.namespaced and any(tracks(kind, n) for n in names):
            out += [(kind, o) for o in store.peek(kind.resource, namespace)]
    return out


def current_status(store: Store, quota: Obj) -> Obj:
    """The status of a quota about to be created (it counts itself, as once stored)."""
    meta = quota.get("metadata") or {}
    ns, name = meta.get("namespace", ""), meta.get("name", "")
    objects = namespace_objects(store, ns, hard_of(quota))
    objects = [(k, o) for k, o in objects if not (k.kind == "ResourceQuota" and _named(o, name))]
    objects.append((kind_of(QUOTAS), quota))
    return status_of(quota, used_by(quota, objects, _now()))


def _named(obj: Obj, name: str) -> bool:
    return (obj.get("metadata") or {}).get("name") == name


def _same_status(status: Any, wanted: Obj) -> bool:
    """Equal by value: a sum printed "1536Mi" by one path and "1610612736" by another is
    the same usage and not worth a write (nor an endless back and forth)."""
    if not isinstance(status, dict) or status.get("hard") != wanted["hard"]:
        return False
    used = status.get("used") or {}
    if set(used) != set(wanted["used"]):
        return False
    try:
        return all(amount(used[k]).value == amount(v).value for k, v in wanted["used"].items())
    except ValueError:
        return False


def write_status(store: Store, namespace: str, name: str, status: Obj) -> None:
    """Set a quota's status unless it already says the same."""

    def put(obj: Obj) -> None:
        obj["status"] = status

    with contextlib.suppress(NotFound):
        if not _same_status(store.get(QUOTAS, namespace, name).get("status"), status):
            store.mutate(QUOTAS, namespace, name, put)


def sync_namespace(store: Store, namespace: str) -> None:
    """Recompute ``status`` of every quota in the namespace from what is stored now."""
    quotas, _ = store.list(QUOTAS, namespace)
    if not quotas:
        return
    names = {n for q in quotas for n in hard_of(q)}
    objects = namespace_objects(store, namespace, names)
    now = _now()
    for q in quotas:
        write_status(
            store, namespace, q["metadata"]["name"], status_of(q, used_by(q, objects, now))
        )


class ResourceQuotaAdmission:
    """Validating: refuse what a namespace's quotas do not allow; charge what they do."""

    name = "ResourceQuota"

    def admit(self, req: Request, chain: Admission) -> None:
        if req.kind.kind != "ResourceQuota" or req.subresource:
            return
        error = hard_error(req.obj)
        if error is not None:
            raise error
        if req.operation == "UPDATE":  # a changed spec.hard shows in status.hard at once
            req.obj["status"] = current_status(chain.store, req.obj)

    def validate(self, req: Request, chain: Admission) -> None:
        if req.subresource or not req.namespace or not req.kind.namespaced:
            return
        quotas, _ = chain.store.list(QUOTAS, req.namespace)
        quotas = [q for q in quotas if any(tracks(req.kind, n) for n in hard_of(q))]
        if not quotas:
            return
        now = _now()
        names = {n for q in quotas for n in hard_of(q)}
        objects: list[tuple[Kind, Obj]] | None = None
        states = []
        for q in quotas:
            # as the API server does: the quota's status.used plus this request, not a
            # count of the namespace (a quota whose status does not cover its hard yet
            # is counted)
            used = recorded_used(q)
            if used is None:
                if objects is None:
                    objects = namespace_objects(chain.store, req.namespace, names)
                used = used_by(q, objects, now)
            states.append(QuotaState(q["metadata"]["name"], hard_of(q), used, scopes_of(q)))
        decision = check_request(req.kind, req.obj, req.old, states, now)
        if decision.refusal is not None:
            raise Forbidden(
                f'{req.kind.qualified} "{req.name}" is forbidden: {decision.refusal}',
                details={"name": req.name, "group": req.kind.group, "kind": req.kind.plural},
            )
        if req.dry_run:
            return
        by_name = {q["metadata"]["name"]: q for q in quotas}
        for name, used in decision.used.items():
            write_status(chain.store, req.namespace, name, status_of(by_name[name], used))
        if req.operation == "CREATE":  # charged here: the controller need not recount it
            charged = _CHARGED.get(chain.store)
            if charged is not None:
                charged.add((req.namespace, req.kind.plural, req.name))


class QuotaStatus:
    """The quota controller: ``status.used`` follows every change of what quotas track.

    A store listener notes the namespace; the recompute runs on the loop's next turn, before
    the server reads the next request. Without a running loop (objects seeded before the
    stand-in serves) namespaces wait for the next change that has one; admission has
    already charged what it admitted.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._dirty: set[str] = set()
        self._scheduled = False
        self._syncing = ""
        items, _ = store.list(QUOTAS)
        self._quota_namespaces = {q["metadata"]["namespace"] for q in items}
        self._charged = _CHARGED.setdefault(store, set())
        self._unsubscribe = store.add_listener(self._on_change)

    def close(self) -> None:
        self._unsubscribe()

    def _on_change(self, event: Event) -> None:
        """Only notes work: the store must not be written from inside a listener."""
        ns = event.namespace
        if event.resource == QUOTAS and ns == self._syncing:
            return  # our own status write
        if event.resource == QUOTAS:
            if event.type == "MODIFIED" and (event.prev or {}).get("spec") == event.obj.get("spec"):
                return  # a status write (admission's charge, or ours): nothing to recount
            if event.type == "ADDED":
                self._quota_namespaces.add(ns)
            elif event.type == "DELETED" and not self.store.list(QUOTAS, ns)[0]:
                self._quota_namespaces.discard(ns)
                return
        if ns not in self._quota_namespaces:
            return
        if event.type == "ADDED" and event.resource != QUOTAS:
            key = (ns, event.resource.rsplit("/", 1)[-1], event.obj["metadata"]["name"])
            if key in self._charged:  # admission charged it already, as the API server
                self._charged.discard(key)  # does: no recount of the namespace
                return
        self._dirty.add(ns)
        if self._scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # seeded before the loop runs: the next change with a loop syncs it
        self._scheduled = True
        loop.call_soon(self.sync)

    def sync(self) -> None:
        """Recompute every namespace noted since the last sync."""
        try:
            while self._dirty:
                namespace = self._syncing = self._dirty.pop()
                try:
                    sync_namespace(self.store, namespace)
                except Exception:  # noqa: BLE001 - a controller logs and carries on
                    log.exception("devstack quota controller: namespace %s failed", namespace)
        finally:
            self._scheduled, self._syncing = False, ""
