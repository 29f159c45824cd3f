"""OwnerReferencesPermissionEnforcement, which OpenShift enables and upstream Kubernetes
leaves off: who may point an object at an owner, and who may make it hold up the owner's
deletion.

As the upstream plugin (validating, on CREATE and UPDATE):

- an update that changes ``metadata.ownerReferences`` needs ``delete`` on the object
  itself. A create is exempt: whoever may create an object could as well not have;
- a reference that newly has ``blockOwnerDeletion: true`` (added so, or switched from
  unset or false) needs ``update`` on the owner's ``finalizers`` subresource
  (``jobs/finalizers`` in group batch for a Job), by the owner's name, in the object's
  namespace (no namespace for a cluster-scoped owner). The owner's apiVersion and kind
  are mapped to a resource through the served kinds, as the REST mapper does;
- pod status updates are exempt.

The plugin asks the authorizer and prints its reason and error after the message; the RBAC
authorizer gives an empty reason and a nil error, hence the real message's ``: , <nil>``.
"""

from __future__ import annotations

from typing import Any

from ..admission import Admission, Request
from ..errors import Forbidden
from ..resources import KINDS, Kind

EXEMPT = {("", "pods", "status")}  # (group, resource, subresource)
# what the authorizer answers when it only has no rule that allows: no reason, no error
REASON, ERROR = "", "<nil>"
CANNOT_DELETE = f"cannot set an ownerRef on a resource you can't delete: {REASON}, {ERROR}"
CANNOT_BLOCK = (
    "cannot set blockOwnerDeletion if an ownerReference refers to a resource you can't set "
    f"finalizers on: {REASON}, {ERROR}"
)


def owner_references(obj: dict[str, Any] | None) -> list[dict[str, Any]]:
    """An object's references (none for an object without metadata)."""
    refs = ((obj or {}).get("metadata") or {}).get("ownerReferences")
    return [r for r in refs if isinstance(r, dict)] if isinstance(refs, list) else []


def changes_owner_references(new: list[dict[str, Any]], old: list[dict[str, Any]] | None) -> bool:
    """Whether a write sets ownerReferences (create) or changes them in any way (update)."""
    if old is None:
        return bool(new)
    return new != old


def newly_blocking(
    new: list[dict[str, Any]], old: list[dict[str, Any]] | None
) -> list[dict[str, Any]]:
    """References with ``blockOwnerDeletion: true`` that were not blocking before (matched
    by uid): new ones, and ones switched from unset or false."""
    blocking = [r for r in new if r.get("blockOwnerDeletion") is True]
    if old is None:
        return blocking
    before = {r.get("uid"): r for r in old}
    return [
        r
        for r in blocking
        if r.get("uid") not in before or before[r.get("uid")].get("blockOwnerDeletion") is not True
    ]


def owner_kind(api_version: str, kind: str) -> Kind:
    """The served kind an ownerReference names, as the REST mapper finds it; LookupError
    with the mapper's words when none is served."""
    if api_version.count("/") > 1:
        raise LookupError(f"unexpected GroupVersion string: {api_version}")
    group, _, version = ("", "", "") if api_version == "/" else api_version.rpartition("/")
    for k in KINDS:
        if k.group == group and k.kind == kind and (k.version == version or not version):
            return k
    searched = f"{group}/{version}" if group else version
    raise LookupError(f'no matches for kind "{kind}" in version "{searched}"')


def forbidden(req: Request, message: str) -> Forbidden:
    """admission.NewForbidden: the object's name (or generateName, or "Unknown")."""
    meta = req.obj.get("metadata") or {}
    name = req.name or meta.get("name") or meta.get("generateName") or "Unknown"
    return Forbidden(
        f'{req.kind.qualified} "{name}" is forbidden: {message}',
        details={"name": name, "group": req.kind.group, "kind": req.kind.plural},
    )


class OwnerReferencesPermissionEnforcement:
    """Validating: ownerReferences need ``delete`` on the object; blockOwnerDeletion needs
    ``update`` on the owner's finalizers."""

    name = "OwnerReferencesPermissionEnforcement"

    def admit(self, req: Request, chain: Admission) -> None:
        return None

    def validate(self, req: Request, chain: Admission) -> None:
        kind = req.kind
        if (kind.group, kind.plural, req.subresource) in EXEMPT:
            return
        new = owner_references(req.obj)
        old = None if req.old is None else owner_references(req.old)
        if not changes_owner_references(new, old):
            return
        if req.operation != "CREATE" and not chain.can(
            req.user,
            "delete",
            kind.group,
            kind.plural,
            subresource=req.subresource,
            namespace=req.namespace,
            name=req.name,
        ):
            raise forbidden(req, CANNOT_DELETE)
        for ref in newly_blocking(new, old):
            api_version, owner = str(ref.get("apiVersion") or ""), str(ref.get("kind") or "")
            try:
                target = owner_kind(api_version, owner)
            except LookupError as e:
                raise forbidden(
                    req,
                    "cannot set blockOwnerDeletion in this case because cannot find RESTMapping "
                    f"for APIVersion {api_version} Kind {owner}: {e}",
                ) from None
            if not chain.can(
                req.user,
                "update",
                target.group,
                target.plural,
                subresource="finalizers",
                namespace=req.namespace if target.namespaced else "",
                name=str(ref.get("name") or ""),
            ):
                raise forbidden(req, CANNOT_BLOCK)
