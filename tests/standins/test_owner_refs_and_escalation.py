"""Two refusals of the real API server, through HTTP as a client meets them:
OwnerReferencesPermissionEnforcement (OpenShift enables it, upstream Kubernetes does not)
and RBAC escalation prevention (every cluster). Then the pure decisions behind them.
"""

from __future__ import annotations

import httpx
import pytest

from devstack.kube import rbac
from devstack.kube.errors import BadRequest
from devstack.kube.openshift.owner_references import (
    changes_owner_references,
    newly_blocking,
    owner_kind,
)
from devstack.kube.rbac_escalation import (
    PolicyRule,
    covers,
    decode_errors,
    escalation_message,
    only_gc_fields_change,
)
from devstack.kube.server import KubeStandIn

SA = "system:serviceaccount:x:runner"
SA_GROUPS = '["system:serviceaccounts" "system:serviceaccounts:x" "system:authenticated"]'
SA_SUBJECT = {"kind": "ServiceAccount", "name": "runner", "namespace": "x"}
KIM_SUBJECT = {"kind": "User", "name": "kim"}
MASTERS_RULE = {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"]}
TOKENS = {
    "root": {"user": "admin", "admin": True},
    "sa": {"user": SA},
    "kim": {"user": "kim"},
    "ops": {
        "user": "ops",
        "groups": ["system:masters"],
        "rules": [{**MASTERS_RULE, "verbs": ["create"], "namespaces": ["x"]}],
    },
}
RBAC = "/apis/rbac.authorization.k8s.io/v1"
RBAC_GROUP = "rbac.authorization.k8s.io"
SECRETS = "/api/v1/namespaces/x/secrets"
JOBS = "/apis/batch/v1/namespaces/x/jobs"
MERGE = {"Content-Type": "application/merge-patch+json"}
CANNOT_BLOCK = (
    "cannot set blockOwnerDeletion if an ownerReference refers to a resource you can't set "
    "finalizers on: , <nil>"
)
NOT_HELD = "is attempting to grant RBAC permissions not currently held:"


def standin(tmp_path, profile: str) -> KubeStandIn:
    return KubeStandIn(
        root=tmp_path / "kube",
        profile=profile,
        tokens=TOKENS,
        run_kubelet=False,
        run_controllers=False,
        strict_schema=True,
        namespaces=["default", "x", "y"],
    )


@pytest.fixture
def openshift(tmp_path):
    s = standin(tmp_path, "openshift")
    with s.serve_in_thread():
        yield s


@pytest.fixture
def kube(tmp_path):
    s = standin(tmp_path, "kubernetes")
    with s.serve_in_thread():
        yield s


def call(kube: KubeStandIn, token: str, method: str, path: str, body=None, headers=None):
    headers = {"Authorization": f"Bearer {token}", **(headers or {})}
    if method == "PATCH":
        return httpx.patch(kube.url + path, json=body, headers={**MERGE, **headers}, timeout=10)
    return httpx.request(method, kube.url + path, json=body, headers=headers, timeout=10)


def ok(response: httpx.Response) -> dict:
    assert response.is_success, response.text
    return response.json()


def rule(group: str, resources: list[str], verbs: list[str], names: list[str] | None = None):
    out = {"apiGroups": [group], "resources": resources, "verbs": verbs}
    return {**out, "resourceNames": names} if names else out


def role_body(name: str, rules: list[dict], namespace: str | None = None) -> dict:
    kind = "Role" if namespace else "ClusterRole"
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": f"{RBAC_GROUP}/v1", "kind": kind, "metadata": meta, "rules": rules}


def binding_body(name: str, role_kind: str, role: str, subject: dict, namespace: str | None):
    kind = "RoleBinding" if namespace else "ClusterRoleBinding"
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {
        "apiVersion": f"{RBAC_GROUP}/v1",
        "kind": kind,
        "metadata": meta,
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": role_kind, "name": role},
        "subjects": [subject],
    }


def roles_path(namespace: str | None) -> str:
    return f"{RBAC}/namespaces/{namespace}/roles" if namespace else f"{RBAC}/clusterroles"


def bindings_path(namespace: str | None) -> str:
    if namespace:
        return f"{RBAC}/namespaces/{namespace}/rolebindings"
    return f"{RBAC}/clusterrolebindings"


def grant(kube: KubeStandIn, name: str, rules: list[dict], namespace: str | None, subject=None):
    """As the cluster admin: a Role (ClusterRole when no namespace) and its binding."""
    ok(call(kube, "root", "POST", roles_path(namespace), role_body(name, rules, namespace)))
    role_kind = "Role" if namespace else "ClusterRole"
    body = binding_body(name, role_kind, name, subject or SA_SUBJECT, namespace)
    ok(call(kube, "root", "POST", bindings_path(namespace), body))


def create_job(kube: KubeStandIn, token: str, name: str = "work") -> dict:
    container = {"name": "main", "image": "busybox", "command": ["true"]}
    body = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "suspend": True,
            "template": {"spec": {"restartPolicy": "Never", "containers": [container]}},
        },
    }
    return ok(call(kube, token, "POST", JOBS, body))


def owner(obj: dict, block: bool | None) -> dict:
    ref = {
        "apiVersion": obj.get("apiVersion", "v1"),
        "kind": obj.get("kind", "Pod"),
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
    }
    return ref if block is None else {**ref, "blockOwnerDeletion": block}


def secret(name: str, refs: list[dict] | None = None) -> dict:
    meta = {"name": name, **({"ownerReferences": refs} if refs is not None else {})}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "stringData": {"k": "v"}}


def assert_forbidden(response: httpx.Response, message: str, name: str, group: str, kind: str):
    assert response.status_code == 403, response.text
    body = response.json()
    assert body["reason"] == "Forbidden" and body["code"] == 403
    assert body["message"] == message
    details = {"name": name, "kind": kind, **({"group": group} if group else {})}
    assert body["details"] == details


WORKER = [
    rule("", ["secrets"], ["create", "delete", "get", "patch"]),
    rule("batch", ["jobs"], ["create", "get"]),
]


# -- OwnerReferencesPermissionEnforcement (OpenShift) ---------------------------------------
def test_block_owner_deletion_needs_update_on_the_owners_finalizers(openshift):
    grant(openshift, "worker", WORKER, "x")
    job = create_job(openshift, "sa")
    refused = call(openshift, "sa", "POST", SECRETS, secret("s1", [owner(job, True)]))
    message = f'secrets "s1" is forbidden: {CANNOT_BLOCK}'
    assert_forbidden(refused, message, "s1", "", "secrets")
    assert call(openshift, "root", "GET", f"{SECRETS}/s1").status_code == 404
    # not blocking: nothing to ask
    ok(call(openshift, "sa", "POST", SECRETS, secret("s2", [owner(job, False)])))
    ok(call(openshift, "sa", "POST", SECRETS, secret("s3", [owner(job, None)])))
    # the finalizers of another Job are not this Job's
    grant(openshift, "other", [rule("batch", ["jobs/finalizers"], ["update"], ["other"])], "x")
    again = call(openshift, "sa", "POST", SECRETS, secret("s1", [owner(job, True)]))
    assert again.status_code == 403, again.text
    grant(openshift, "fin", [rule("batch", ["jobs/finalizers"], ["update"], ["work"])], "x")
    created = ok(call(openshift, "sa", "POST", SECRETS, secret("s1", [owner(job, True)])))
    assert created["metadata"]["ownerReferences"][0]["blockOwnerDeletion"] is True


def test_a_patch_that_makes_a_reference_block_is_refused_the_same_way(openshift):
    grant(openshift, "worker", WORKER, "x")
    job = create_job(openshift, "sa")
    ok(call(openshift, "sa", "POST", SECRETS, secret("s")))
    path = f"{SECRETS}/s"
    adds = {"metadata": {"ownerReferences": [owner(job, True)]}}
    message = f'secrets "s" is forbidden: {CANNOT_BLOCK}'
    assert_forbidden(call(openshift, "sa", "PATCH", path, adds), message, "s", "", "secrets")
    # a reference that does not block may be added, but not switched to blocking
    ok(call(openshift, "sa", "PATCH", path, {"metadata": {"ownerReferences": [owner(job, False)]}}))
    assert_forbidden(call(openshift, "sa", "PATCH", path, adds), message, "s", "", "secrets")
    # a patch that leaves the references alone is not looked at
    ok(call(openshift, "sa", "PATCH", path, {"metadata": {"labels": {"a": "b"}}}))
    grant(openshift, "fin", [rule("batch", ["jobs/finalizers"], ["update"])], "x")
    patched = ok(call(openshift, "sa", "PATCH", path, adds))
    assert patched["metadata"]["ownerReferences"] == [owner(job, True)]


def test_changing_owner_references_needs_delete_on_the_object(openshift):
    grant(openshift, "kim", [rule("", ["secrets"], ["create", "patch"])], "x", KIM_SUBJECT)
    job = create_job(openshift, "root")
    # creating with a reference needs no delete (the creator could as well not have)
    ok(call(openshift, "kim", "POST", SECRETS, secret("kept", [owner(job, None)])))
    path = f"{SECRETS}/kept"
    drop = {"metadata": {"ownerReferences": None}}
    message = (
        'secrets "kept" is forbidden: cannot set an ownerRef on a resource you can\'t delete: '
        ", <nil>"
    )
    assert_forbidden(call(openshift, "kim", "PATCH", path, drop), message, "kept", "", "secrets")
    ok(call(openshift, "kim", "PATCH", path, {"metadata": {"labels": {"a": "b"}}}))
    grant(openshift, "kim-del", [rule("", ["secrets"], ["delete"], ["kept"])], "x", KIM_SUBJECT)
    patched = ok(call(openshift, "kim", "PATCH", path, drop))
    assert "ownerReferences" not in patched["metadata"]


def test_the_owners_kind_names_the_finalizers_to_update(openshift):
    grant(openshift, "worker", WORKER, "x")
    grant(openshift, "fin", [rule("batch", ["jobs/finalizers"], ["update"])], "x")
    pod = {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "nb", "uid": "u-1"}}
    refused = call(openshift, "sa", "POST", SECRETS, secret("p", [owner(pod, True)]))
    assert_forbidden(refused, f'secrets "p" is forbidden: {CANNOT_BLOCK}', "p", "", "secrets")
    unknown = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": pod["metadata"]}
    refused = call(openshift, "sa", "POST", SECRETS, secret("w", [owner(unknown, True)]))
    message = (
        'secrets "w" is forbidden: cannot set blockOwnerDeletion in this case because cannot '
        "find RESTMapping for APIVersion example.com/v1 Kind Widget: no matches for kind "
        '"Widget" in version "example.com/v1"'
    )
    assert_forbidden(refused, message, "w", "", "secrets")
    grant(openshift, "pod-fin", [rule("", ["pods/finalizers"], ["update"])], "x")
    ok(call(openshift, "sa", "POST", SECRETS, secret("p", [owner(pod, True)])))


def test_the_cluster_admin_and_the_control_surface_are_not_checked(openshift):
    job = create_job(openshift, "root")
    ok(call(openshift, "root", "POST", SECRETS, secret("a", [owner(job, True)])))
    created = openshift.call(openshift.create_object, {**secret("b", [owner(job, True)])}, "x")
    assert created["metadata"]["ownerReferences"][0]["blockOwnerDeletion"] is True


def test_upstream_kubernetes_does_not_enforce_owner_references(kube):
    grant(kube, "worker", WORKER, "x")
    job = create_job(kube, "sa")
    ok(call(kube, "sa", "POST", SECRETS, secret("s", [owner(job, True)])))


# -- RBAC escalation prevention (every profile) ----------------------------------------------
RBAC_EDITOR = [
    rule(RBAC_GROUP, ["roles", "rolebindings"], ["create", "get", "patch", "update"]),
    rule("", ["pods"], ["get", "list"]),
]


def not_held(resource: str, name: str, *missing: str, user: str = SA, groups=SA_GROUPS) -> str:
    return (
        f'{resource}.{RBAC_GROUP} "{name}" is forbidden: user "{user}" (groups={groups}) '
        f"{NOT_HELD}\n" + "\n".join(missing)
    )


@pytest.mark.parametrize("profile", ["kubernetes", "openshift"])
def test_a_role_may_grant_only_what_its_author_holds(tmp_path, profile):
    with standin(tmp_path, profile).serve_in_thread() as s:
        grant(s, "rbac-editor", RBAC_EDITOR, "x")
        pods = role_body("pod-reader", [rule("", ["pods"], ["get"])], "x")
        ok(call(s, "sa", "POST", roles_path("x"), pods))
        secrets = role_body("secret-reader", [rule("", ["secrets"], ["get"])], "x")
        refused = call(s, "sa", "POST", roles_path("x"), secrets)
        missing = '{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}'
        message = not_held("roles", "secret-reader", missing)
        assert_forbidden(refused, message, "secret-reader", RBAC_GROUP, "roles")
        assert call(s, "root", "GET", f"{roles_path('x')}/secret-reader").status_code == 404
        mixed = role_body(
            "mixed",
            [
                rule("", ["pods"], ["get", "list", "watch"]),
                rule("", ["secrets"], ["get", "list"]),
                rule("", ["configmaps"], ["get"]),
            ],
            "x",
        )
        refused = call(s, "sa", "POST", roles_path("x"), mixed)
        message = not_held(
            "roles",
            "mixed",
            '{APIGroups:[""], Resources:["configmaps"], Verbs:["get"]}',
            '{APIGroups:[""], Resources:["pods"], Verbs:["watch"]}',
            '{APIGroups:[""], Resources:["secrets"], Verbs:["get" "list"]}',
        )
        assert_forbidden(refused, message, "mixed", RBAC_GROUP, "roles")
        # the cluster admin and system:masters are never asked
        ok(call(s, "root", "POST", roles_path("x"), secrets))
        anything = role_body("anything", [rule("*", ["*"], ["*"])], "x")
        ok(call(s, "ops", "POST", roles_path("x"), anything))


def test_updates_are_checked_whole_except_for_the_garbage_collectors_fields(kube):
    grant(kube, "rbac-editor", RBAC_EDITOR, "x")
    ok(
        call(
            kube,
            "root",
            "POST",
            roles_path("x"),
            role_body("wide", [rule("", ["secrets"], ["get"])], "x"),
        )
    )
    path = f"{roles_path('x')}/wide"
    missing = '{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}'
    refused = call(kube, "sa", "PATCH", path, {"metadata": {"labels": {"a": "b"}}})
    assert_forbidden(refused, not_held("roles", "wide", missing), "wide", RBAC_GROUP, "roles")
    ok(call(kube, "sa", "PATCH", path, {"metadata": {"finalizers": ["example.com/keep"]}}))
    ok(
        call(
            kube,
            "sa",
            "POST",
            roles_path("x"),
            role_body("pods", [rule("", ["pods"], ["get"])], "x"),
        )
    )
    more = {"rules": [rule("", ["pods"], ["get", "watch"])]}
    refused = call(kube, "sa", "PATCH", f"{roles_path('x')}/pods", more)
    missing = '{APIGroups:[""], Resources:["pods"], Verbs:["watch"]}'
    assert_forbidden(refused, not_held("roles", "pods", missing), "pods", RBAC_GROUP, "roles")


def test_escalate_lets_an_author_grant_more(kube):
    grant(kube, "rbac-editor", RBAC_EDITOR, "x")
    ok(
        call(
            kube,
            "root",
            "POST",
            roles_path("x"),
            role_body("wide", [rule("", ["secrets"], ["get"])], "x"),
        )
    )
    grant(kube, "escalate-wide", [rule(RBAC_GROUP, ["roles"], ["escalate"], ["wide"])], "x")
    ok(call(kube, "sa", "PATCH", f"{roles_path('x')}/wide", {"metadata": {"labels": {"a": "b"}}}))
    # a create names no object: an escalate limited to names does not help it
    secrets = role_body("secret-reader", [rule("", ["secrets"], ["get"])], "x")
    assert call(kube, "sa", "POST", roles_path("x"), secrets).status_code == 403
    grant(kube, "escalate", [rule(RBAC_GROUP, ["roles"], ["escalate"])], "x")
    ok(call(kube, "sa", "POST", roles_path("x"), secrets))


TEAM_ADMIN = [rule("", ["pods", "secrets"], ["*"]), rule("batch", ["jobs"], ["get", "list"])]
TEAM_ADMIN_MISSING = (
    '{APIGroups:[""], Resources:["pods"], Verbs:["*"]}',
    '{APIGroups:[""], Resources:["secrets"], Verbs:["*"]}',
    '{APIGroups:["batch"], Resources:["jobs"], Verbs:["get" "list"]}',
)
POD_VIEWER = [rule("", ["pods"], ["get", "list"])]


def test_a_binding_needs_the_roles_permissions_or_bind_on_it(kube):
    grant(kube, "rbac-editor", RBAC_EDITOR, "x")
    ok(call(kube, "root", "POST", roles_path(None), role_body("team-admin", TEAM_ADMIN)))
    ok(call(kube, "root", "POST", roles_path(None), role_body("pod-viewer", POD_VIEWER)))
    kim = binding_body("kim-views", "ClusterRole", "pod-viewer", KIM_SUBJECT, "x")
    ok(call(kube, "sa", "POST", bindings_path("x"), kim))  # held in x: may be passed on
    admins = binding_body("admins", "ClusterRole", "team-admin", KIM_SUBJECT, "x")
    refused = call(kube, "sa", "POST", bindings_path("x"), admins)
    message = not_held("rolebindings", "admins", *TEAM_ADMIN_MISSING)
    assert_forbidden(refused, message, "admins", RBAC_GROUP, "rolebindings")
    grant(kube, "bind-viewer", [rule(RBAC_GROUP, ["clusterroles"], ["bind"], ["pod-viewer"])], "x")
    assert call(kube, "sa", "POST", bindings_path("x"), admins).status_code == 403
    grant(kube, "bind-admin", [rule(RBAC_GROUP, ["clusterroles"], ["bind"], ["team-admin"])], "x")
    ok(call(kube, "sa", "POST", bindings_path("x"), admins))
    # kim now holds team-admin in x, and nowhere else
    assert call(kube, "kim", "GET", "/api/v1/namespaces/x/secrets").status_code == 200
    assert call(kube, "kim", "GET", "/api/v1/namespaces/y/secrets").status_code == 403
    missing = binding_body("gone", "ClusterRole", "nope", KIM_SUBJECT, "x")
    refused = call(kube, "sa", "POST", bindings_path("x"), missing)
    assert refused.status_code == 404, refused.text
    assert refused.json()["message"] == f'clusterroles.{RBAC_GROUP} "nope" not found'


def test_cluster_wide_grants_need_cluster_wide_permissions(kube):
    grant(kube, "rbac-editor", RBAC_EDITOR, "x")  # pods get/list, in x only
    makers = [rule(RBAC_GROUP, ["clusterroles", "clusterrolebindings"], ["create"])]
    grant(kube, "crb-maker", makers, None)
    ok(call(kube, "root", "POST", roles_path(None), role_body("pod-viewer", POD_VIEWER)))
    everywhere = binding_body("everywhere", "ClusterRole", "pod-viewer", KIM_SUBJECT, None)
    refused = call(kube, "sa", "POST", bindings_path(None), everywhere)
    missing = '{APIGroups:[""], Resources:["pods"], Verbs:["get" "list"]}'
    message = not_held("clusterrolebindings", "everywhere", missing)
    assert_forbidden(refused, message, "everywhere", RBAC_GROUP, "clusterrolebindings")
    viewer = role_body("viewer", POD_VIEWER)
    refused = call(kube, "sa", "POST", roles_path(None), viewer)
    assert_forbidden(
        refused, not_held("clusterroles", "viewer", missing), "viewer", RBAC_GROUP, "clusterroles"
    )
    # bind granted in a namespace does not reach a ClusterRoleBinding
    grant(kube, "bind-x", [rule(RBAC_GROUP, ["clusterroles"], ["bind"])], "x")
    assert call(kube, "sa", "POST", bindings_path(None), everywhere).status_code == 403
    grant(kube, "pods-everywhere", POD_VIEWER, None)
    ok(call(kube, "sa", "POST", bindings_path(None), everywhere))
    ok(call(kube, "sa", "POST", roles_path(None), viewer))


def test_an_aggregation_rule_needs_every_permission(kube):
    # every verb on every resource would include escalate: the author lacks only that
    makers = [rule(RBAC_GROUP, ["clusterroles"], ["create"])]
    grant(kube, "makers", makers, None)
    selectors = {"clusterRoleSelectors": [{"matchLabels": {"team": "a"}}]}
    aggregated = {**role_body("aggregated", []), "aggregationRule": selectors}
    refused = call(kube, "sa", "POST", roles_path(None), aggregated)
    message = (
        f'clusterroles.{RBAC_GROUP} "aggregated" is forbidden: must have cluster-admin '
        "privileges to use the aggregationRule"
    )
    assert_forbidden(refused, message, "aggregated", RBAC_GROUP, "clusterroles")
    ok(call(kube, "sa", "POST", roles_path(None), role_body("plain", makers)))
    ok(call(kube, "root", "POST", roles_path(None), aggregated))


def test_malformed_rules_are_refused_while_decoding(kube):
    bad = role_body("bad", [{"apiGroups": [""], "resources": ["pods"], "verbs": "*"}], "x")
    refused = call(kube, "root", "POST", roles_path("x"), bad)
    assert refused.status_code == 400, refused.text
    assert refused.json()["message"] == (
        'Role in version "v1" cannot be handled as a Role: json: cannot unmarshal string into '
        "Go struct field PolicyRule.rules.verbs of type []string"
    )


# -- the pure decisions ---------------------------------------------------------------------
def held(namespaces: list[str] | None = None, **raw) -> rbac.Rule:
    fields = {"apiGroups": "api_groups", "resourceNames": "resource_names"}
    spec = {fields.get(k, k): v for k, v in raw.items()}
    return rbac.Rule.parse(
        {
            "apiGroups": spec.get("api_groups", [""]),
            "resources": spec.get("resources", []),
            "verbs": spec.get("verbs", []),
            "resourceNames": spec.get("resource_names", []),
            **({"namespaces": namespaces} if namespaces is not None else {}),
        }
    )


def wanted(resources: list[str], verbs: list[str], group: str = "", names=None) -> dict:
    return rule(group, resources, verbs, names)


def test_covers_holds_each_verb_in_some_held_rule():
    rules = [held(resources=["pods"], verbs=["get"]), held(resources=["pods"], verbs=["list"])]
    assert covers(rules, [wanted(["pods"], ["get", "list"])], "x") == (True, [])
    ok_, missing = covers(rules, [wanted(["pods", "secrets"], ["get", "watch"])], "x")
    assert not ok_
    assert [(m.resources, m.verbs) for m in missing] == [
        (("pods",), ("watch",)),
        (("secrets",), ("get",)),
        (("secrets",), ("watch",)),
    ]
    assert covers([], [], "x") == (True, [])


def test_wildcards_cover_anything_but_are_covered_only_by_wildcards():
    everything = [held(apiGroups=["*"], resources=["*"], verbs=["*"])]
    assert covers(everything, [wanted(["jobs/status"], ["patch"], "batch")], "x")[0]
    assert covers(everything, [wanted(["*"], ["*"], "*")], "x")[0]
    all_verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
    explicit = [held(resources=["pods"], verbs=all_verbs)]
    assert not covers(explicit, [wanted(["pods"], ["*"])], "x")[0]
    assert not covers(explicit, [wanted(["*"], ["get"])], "x")[0]
    assert not covers(
        [held(resources=["pods"], verbs=["get"])], [wanted(["pods"], ["get"], "*")], "x"
    )[0]
    any_group = [held(apiGroups=["*"], resources=["pods"], verbs=["get"])]
    assert covers(any_group, [wanted(["pods"], ["get"], "batch")], "x")[0]


def test_resource_names_narrow_what_is_held():
    named = [held(resources=["secrets"], verbs=["get"], resourceNames=["a", "b"])]
    assert covers(named, [wanted(["secrets"], ["get"], names=["a"])], "x")[0]
    assert not covers(named, [wanted(["secrets"], ["get"])], "x")[0]
    ok_, missing = covers(named, [wanted(["secrets"], ["get"], names=["a", "c"])], "x")
    assert not ok_ and [m.resource_names for m in missing] == [("c",)]
    unnamed = [held(resources=["secrets"], verbs=["get"])]
    assert covers(unnamed, [wanted(["secrets"], ["get"], names=["anything"])], "x")[0]


def test_subresources_are_held_by_name_or_by_star_slash():
    pods = [held(resources=["pods"], verbs=["get"])]
    assert not covers(pods, [wanted(["pods/log"], ["get"])], "x")[0]
    logs = [held(resources=["pods/log"], verbs=["get"])]
    assert covers(logs, [wanted(["pods/log"], ["get"])], "x")[0]
    assert not covers(logs, [wanted(["pods"], ["get"])], "x")[0]
    scale = [held(apiGroups=["apps"], resources=["*/scale"], verbs=["update"])]
    assert covers(scale, [wanted(["deployments/scale"], ["update"], "apps")], "x")[0]
    assert not covers(scale, [wanted(["deployments"], ["update"], "apps")], "x")[0]
    assert not covers(scale, [wanted(["deployments/status"], ["update"], "apps")], "x")[0]
    star = [held(resources=["*"], verbs=["get"])]
    assert covers(star, [wanted(["pods/log"], ["get"])], "x")[0]


def test_namespaced_rules_are_held_in_their_namespace_only():
    in_x = [held(["x"], resources=["pods"], verbs=["get"])]
    want = [wanted(["pods"], ["get"])]
    assert covers(in_x, want, "x")[0]
    assert not covers(in_x, want, "y")[0]
    assert not covers(in_x, want, "")[0]  # cluster-wide: a RoleBinding's rules never count
    cluster = [held(None, resources=["pods"], verbs=["get"])]
    assert covers(cluster, want, "y")[0] and covers(cluster, want, "")[0]
    assert covers([held(["*"], resources=["pods"], verbs=["get"])], want, "y")[0]


def test_non_resource_urls_are_held_only_through_non_resource_rules():
    want = [{"nonResourceURLs": ["/healthz/ready"], "verbs": ["get"]}]
    assert not covers([held(apiGroups=["*"], resources=["*"], verbs=["*"])], want, "")[0]
    prefix = [PolicyRule(verbs=("get",), non_resource_urls=("/healthz*",))]
    assert covers(prefix, want, "")[0]
    assert not covers([PolicyRule(verbs=("get",), non_resource_urls=("/healthz",))], want, "")[0]


def test_the_message_merges_verbs_and_lists_permissions_sorted():
    _, missing = covers(
        [],
        [
            wanted(["secrets"], ["get", "list"]),
            wanted(["configmaps"], ["get"], names=["one"]),
            wanted(["pods"], ["get"]),
            {"nonResourceURLs": ["/metrics"], "verbs": ["get"]},
        ],
        "x",
    )
    identity = rbac.Identity("kim", groups=("team",))
    assert escalation_message(identity, missing) == (
        'user "kim" (groups=["team" "system:authenticated"]) is attempting to grant RBAC '
        "permissions not currently held:\n"
        '{APIGroups:[""], Resources:["configmaps"], ResourceNames:["one"], Verbs:["get"]}\n'
        '{APIGroups:[""], Resources:["pods"], Verbs:["get"]}\n'
        '{APIGroups:[""], Resources:["secrets"], Verbs:["get" "list"]}\n'
        '{NonResourceURLs:["/metrics"], Verbs:["get"]}'
    )


def test_only_the_garbage_collectors_fields_escape_the_check():
    old = {"metadata": {"name": "r", "resourceVersion": "4"}, "rules": [wanted(["pods"], ["get"])]}
    gc = {"metadata": {"name": "r", "finalizers": ["f"], "ownerReferences": [{"uid": "u"}]}}
    assert only_gc_fields_change({**old, **gc}, old)
    assert only_gc_fields_change({**old, "metadata": {"name": "r", "labels": {}}}, old)
    assert not only_gc_fields_change({**old, "metadata": {"name": "r", "labels": {"a": "b"}}}, old)
    assert not only_gc_fields_change({**old, "rules": []}, old)


def test_decode_errors_name_the_field_like_the_server():
    with pytest.raises(BadRequest, match=r"number into Go struct field PolicyRule.rules.verbs"):
        decode_errors("Role", {"rules": [{"verbs": [1]}]})
    with pytest.raises(BadRequest, match=r"object into Go struct field ClusterRole.rules of type"):
        decode_errors("ClusterRole", {"rules": {}})
    with pytest.raises(BadRequest, match=r"string into Go struct field RoleBinding.roleRef of"):
        decode_errors("RoleBinding", {"roleRef": "admin"})
    decode_errors("Role", {"rules": [{"verbs": ["get"], "apiGroups": None}]})


def test_owner_references_that_change_and_that_newly_block():
    a, b = {"uid": "a", "name": "a"}, {"uid": "b", "name": "b"}
    assert not changes_owner_references([], None)
    assert changes_owner_references([a], None)
    assert not changes_owner_references([a, b], [a, b])
    assert changes_owner_references([b, a], [a, b])
    assert changes_owner_references([{**a, "controller": False}], [a])
    blocking = {**a, "blockOwnerDeletion": True}
    assert newly_blocking([blocking, b], None) == [blocking]
    assert newly_blocking([blocking], [{**a, "blockOwnerDeletion": False}]) == [blocking]
    assert newly_blocking([blocking], [a]) == [blocking]
    assert newly_blocking([blocking], [blocking]) == []
    assert newly_blocking([{**b, "blockOwnerDeletion": True}], [blocking]) == [
        {**b, "blockOwnerDeletion": True}
    ]


def test_owner_kinds_map_to_served_resources():
    job = owner_kind("batch/v1", "Job")
    assert (job.group, job.plural, job.namespaced) == ("batch", "jobs", True)
    pod = owner_kind("v1", "Pod")
    assert (pod.group, pod.plural) == ("", "pods")
    assert not owner_kind("v1", "Namespace").namespaced  # finalizers asked cluster-wide
    with pytest.raises(LookupError, match=r'no matches for kind "Job" in version "batch/v2"'):
        owner_kind("batch/v2", "Job")
    with pytest.raises(LookupError, match="unexpected GroupVersion string: a/b/c"):
        owner_kind("a/b/c", "Job")
