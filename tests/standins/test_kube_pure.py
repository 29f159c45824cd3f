"""Pure parts of the Kubernetes stand-in: selectors, patches, RBAC, paths, watch filtering."""

from __future__ import annotations

import pytest

from devstack.kube import rbac
from devstack.kube.api import watch_event_type
from devstack.kube.errors import NotFound
from devstack.kube.patch import (
    PatchError,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)
from devstack.kube.resources import parse_resource_path
from devstack.kube.selectors import compile_selectors, parse_label_selector
from devstack.kube.store import Event
from devstack.kube.validation import qos_class


def obj(labels=None, **status):
    return {"metadata": {"name": "p", "namespace": "ns", "labels": labels or {}}, "status": status}


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("a=b", {"a": "b"}, True),
        ("a==b", {"a": "c"}, False),
        ("a!=b", {}, True),
        ("a!=b", {"a": "b"}, False),
        ("env in (prod, dev)", {"env": "dev"}, True),
        ("env in (prod,dev)", {"env": "qa"}, False),
        ("env notin (prod)", {}, True),
        ("env notin (prod)", {"env": "prod"}, False),
        ("a", {"a": ""}, True),
        ("a", {}, False),
        ("!a", {}, True),
        ("!a", {"a": "x"}, False),
        ("a=b,env in (x,y),!z", {"a": "b", "env": "y"}, True),
        ("app.kubernetes.io/name=hub", {"app.kubernetes.io/name": "hub"}, True),
        ("", {"x": "y"}, True),
    ],
)
def test_label_selectors(selector, labels, expected):
    assert compile_selectors(selector, None, "Pod")(obj(labels)) is expected


@pytest.mark.parametrize("bad", ["a=b=c", "env in ()", "a in (x", "=x", "a=b,,c=d", "-a=b"])
def test_malformed_label_selectors_are_rejected(bad):
    with pytest.raises(ValueError, match="unable to parse requirement"):
        parse_label_selector(bad)


def test_field_selectors_and_unsupported_fields():
    pod = obj(phase="Running")
    pod["spec"] = {"nodeName": "n1"}
    assert compile_selectors(None, "status.phase=Running,spec.nodeName=n1", "Pod")(pod)
    assert not compile_selectors(None, "status.phase!=Running", "Pod")(pod)
    assert compile_selectors(None, "metadata.name=p,metadata.namespace==ns", "Pod")(pod)
    event = {
        "metadata": {"name": "e"},
        "involvedObject": {"kind": "Pod", "name": "p", "uid": "u-1"},
    }
    assert compile_selectors(None, "involvedObject.kind=Pod", "Event")(event)
    assert not compile_selectors(None, "involvedObject.name=q", "Event")(event)
    # what the jobs service asks for a job's events (valeria_hub/jobs/events.py)
    assert compile_selectors(None, "involvedObject.uid=u-1", "Event")(event)
    assert not compile_selectors(None, "involvedObject.uid=u-2", "Event")(event)
    with pytest.raises(ValueError, match="field label not supported: spec.image"):
        compile_selectors(None, "spec.image=x", "Pod")
    with pytest.raises(ValueError, match="field label not supported: status.phase"):
        compile_selectors(None, "status.phase=Running", "ConfigMap")


def test_merge_patch_deletes_with_null_and_replaces_lists():
    target = {"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"args": ["x", "y"]}}
    out = merge_patch(
        target, {"metadata": {"labels": {"a": None, "c": "3"}}, "spec": {"args": ["z"]}}
    )
    assert out == {"metadata": {"labels": {"b": "2", "c": "3"}}, "spec": {"args": ["z"]}}
    assert target["metadata"]["labels"] == {"a": "1", "b": "2"}  # input untouched


def test_strategic_merge_patch_merges_containers_and_env_by_name():
    target = {
        "spec": {
            "containers": [
                {
                    "name": "a",
                    "image": "a:1",
                    "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}],
                },
                {"name": "b", "image": "b:1"},
            ],
            "tolerations": [{"key": "t1"}],
        }
    }
    patch = {
        "spec": {
            "containers": [
                {"name": "a", "env": [{"name": "Y", "value": "3"}, {"name": "Z", "value": "4"}]},
                {"name": "c", "image": "c:1"},
            ],
            "tolerations": [{"key": "t2"}],
        }
    }
    out = strategic_merge_patch(target, patch)
    containers = {c["name"]: c for c in out["spec"]["containers"]}
    assert containers["a"]["image"] == "a:1"
    assert containers["a"]["env"] == [
        {"name": "X", "value": "1"},
        {"name": "Y", "value": "3"},
        {"name": "Z", "value": "4"},
    ]
    assert containers["b"] == {"name": "b", "image": "b:1"}
    assert containers["c"] == {"name": "c", "image": "c:1"}
    assert out["spec"]["tolerations"] == [{"key": "t2"}]  # no merge key: replaced


def test_strategic_merge_patch_directives():
    target = {
        "spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}]},
        "metadata": {"finalizers": ["x"]},
    }
    out = strategic_merge_patch(
        target, {"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}
    )
    assert [c["name"] for c in out["spec"]["containers"]] == ["b"]
    out = strategic_merge_patch(
        target, {"spec": {"containers": [{"name": "z", "image": "9"}, {"$patch": "replace"}]}}
    )
    assert out["spec"]["containers"] == [{"name": "z", "image": "9"}]
    out = strategic_merge_patch(target, {"metadata": {"finalizers": ["y"]}})
    assert out["metadata"]["finalizers"] == ["x", "y"]
    out = strategic_merge_patch(
        target, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}}
    )
    assert out["metadata"]["finalizers"] == []
    with pytest.raises(PatchError, match="merge key"):
        strategic_merge_patch(target, {"spec": {"containers": [{"image": "no-name"}]}})


def test_json_patch_operations():
    doc = {"metadata": {"labels": {"a": "1"}}, "spec": {"items": [1, 2]}}
    out = json_patch(
        doc,
        [
            {"op": "add", "path": "/metadata/labels/b~1c", "value": "2"},
            {"op": "replace", "path": "/metadata/labels/a", "value": "x"},
            {"op": "add", "path": "/spec/items/-", "value": 3},
            {"op": "remove", "path": "/spec/items/0"},
            {"op": "copy", "from": "/metadata/labels/a", "path": "/metadata/labels/d"},
            {"op": "move", "from": "/metadata/labels/d", "path": "/spec/moved"},
            {"op": "test", "path": "/spec/moved", "value": "x"},
        ],
    )
    assert out == {
        "metadata": {"labels": {"a": "x", "b/c": "2"}},
        "spec": {"items": [2, 3], "moved": "x"},
    }
    with pytest.raises(PatchError, match="test failed"):
        json_patch(doc, [{"op": "test", "path": "/metadata/labels/a", "value": "2"}])
    with pytest.raises(PatchError, match="missing"):
        json_patch(doc, [{"op": "replace", "path": "/nope/x", "value": 1}])
    with pytest.raises(PatchError, match="jsonpatch.Patch"):
        json_patch(doc, {"op": "add"})


def rule(**kw):
    base = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}
    base.update(kw)
    return rbac.Rule.parse(base)


def test_rbac_rules():
    ident = rbac.Identity(
        "u", (rule(namespaces=["hub"]), rule(resources=["pods/log"], verbs=["get"]))
    )
    assert rbac.allows(ident, rbac.Attributes("list", "", "pods", namespace="hub"))
    assert not rbac.allows(ident, rbac.Attributes("list", "", "pods", namespace="other"))
    assert not rbac.allows(ident, rbac.Attributes("list", "", "pods"))  # cluster scope
    assert not rbac.allows(ident, rbac.Attributes("delete", "", "pods", namespace="hub", name="p"))
    assert rbac.allows(ident, rbac.Attributes("get", "", "pods", "log", namespace="any", name="p"))
    assert not rbac.allows(
        ident, rbac.Attributes("get", "", "pods", "status", namespace="hub", name="p")
    )
    wildcard = rbac.Identity(
        "w", (rbac.Rule.parse({"apiGroups": ["*"], "resources": ["*/status"], "verbs": ["*"]}),)
    )
    assert rbac.allows(wildcard, rbac.Attributes("patch", "batch", "jobs", "status", "ns", "j"))
    assert not rbac.allows(wildcard, rbac.Attributes("patch", "batch", "jobs", "", "ns", "j"))
    named = rbac.Identity("n", (rule(resourceNames=["only"]),))
    assert rbac.allows(named, rbac.Attributes("get", "", "pods", namespace="x", name="only"))
    assert not rbac.allows(named, rbac.Attributes("list", "", "pods", namespace="x"))
    assert not rbac.allows(ident, rbac.Attributes("get", "batch", "pods", namespace="hub"))


def test_rbac_forbidden_message_and_token_parsing():
    a = rbac.Attributes("list", "", "pods", namespace="x")
    assert rbac.forbidden_message("hub", a, "pods") == (
        'pods is forbidden: User "hub" cannot list resource "pods" in API group "" '
        'in the namespace "x"'
    )
    b = rbac.Attributes("get", "batch", "jobs", "status", name="j")
    assert rbac.forbidden_message("u", b, "jobs.batch") == (
        'jobs.batch "j" is forbidden: User "u" cannot get resource "jobs/status" '
        'in API group "batch" at the cluster scope'
    )
    assert rbac.parse_tokens(None) is None
    with pytest.raises(ValueError, match="unknown rule fields"):
        rbac.parse_tokens({"t": {"user": "u", "rules": [{"verb": ["get"]}]}})
    with pytest.raises(ValueError, match="user"):
        rbac.parse_tokens({"t": {"rules": []}})


def test_parse_resource_paths():
    t = parse_resource_path("/api/v1/namespaces/hub/pods/p1/log")
    assert (t.kind.plural, t.namespace, t.name, t.subresource) == ("pods", "hub", "p1", "log")
    t = parse_resource_path("/api/v1/pods")
    assert (t.kind.plural, t.namespace, t.name) == ("pods", None, None)
    t = parse_resource_path("/api/v1/namespaces/hub")
    assert (t.kind.plural, t.name) == ("namespaces", "hub")
    t = parse_resource_path("/api/v1/namespaces/hub/status")
    assert (t.kind.plural, t.name, t.subresource) == ("namespaces", "hub", "status")
    t = parse_resource_path("/apis/batch/v1/namespaces/x/jobs/j/status")
    assert (t.kind.kind, t.subresource) == ("Job", "status")
    t = parse_resource_path("/api/v1/watch/namespaces/x/pods")
    assert t.legacy_watch and t.namespace == "x"
    assert parse_resource_path("/apis/batch/v1") is None
    for bad in (
        "/api/v1/widgets",
        "/apis/apps/v1/deployments",
        "/api/v1/namespaces/x/pods/p/exec",
        "/api/v1/pods/p",
    ):
        with pytest.raises(NotFound):
            parse_resource_path(bad)


def test_qos_class():
    assert qos_class({"containers": [{"name": "a"}]}) == "BestEffort"
    lim = {"cpu": "1", "memory": "1Gi"}
    assert (
        qos_class({"containers": [{"resources": {"limits": lim, "requests": lim}}]}) == "Guaranteed"
    )
    assert qos_class({"containers": [{"resources": {"requests": {"cpu": "1"}}}]}) == "Burstable"


def test_watch_event_type_follows_selector_transitions():
    match = compile_selectors("a=b", None, "Pod")
    before, after = obj({"a": "b"}), obj({"a": "c"})
    assert (
        watch_event_type(Event(2, "MODIFIED", "v1/pods", "ns", after, before), match) == "DELETED"
    )
    assert watch_event_type(Event(2, "MODIFIED", "v1/pods", "ns", before, after), match) == "ADDED"
    assert (
        watch_event_type(Event(2, "MODIFIED", "v1/pods", "ns", before, before), match) == "MODIFIED"
    )
    assert watch_event_type(Event(2, "MODIFIED", "v1/pods", "ns", after, after), match) is None
    assert watch_event_type(Event(2, "ADDED", "v1/pods", "ns", after), match) is None
    assert (
        watch_event_type(Event(2, "DELETED", "v1/pods", "ns", before, before), match) == "DELETED"
    )
