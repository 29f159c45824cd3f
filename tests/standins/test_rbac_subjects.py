"""Who a binding names: a ServiceAccount subject without a namespace is one in the
RoleBinding's own namespace (the API server's ``appliesToUser``), as
openshift/valeria-hub-template.yaml's RoleBinding relies on; in a ClusterRoleBinding such
a subject names nobody. Pure."""

from __future__ import annotations

from devstack.kube import rbac

HUB = rbac.Identity("system:serviceaccount:valeria:valeria-hub-hub")
SUBJECT = {"kind": "ServiceAccount", "name": "valeria-hub-hub"}


def binding(namespace: str | None, subject: dict) -> dict:
    meta = {"name": "b"} if namespace is None else {"name": "b", "namespace": namespace}
    return {"metadata": meta, "subjects": [subject]}


def test_a_service_account_subject_without_namespace_is_the_bindings_own():
    groups = rbac.groups_of(HUB)
    assert rbac.binding_names(binding("valeria", SUBJECT), HUB, groups)
    assert not rbac.binding_names(binding("other", SUBJECT), HUB, groups)
    assert not rbac.binding_names(binding(None, SUBJECT), HUB, groups)  # cluster-wide
    explicit = {**SUBJECT, "namespace": "valeria"}
    assert rbac.binding_names(binding("other", explicit), HUB, groups)
    assert rbac.binding_names(binding(None, explicit), HUB, groups)
