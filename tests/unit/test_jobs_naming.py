"""Names of the jobs service (pure): collision-free, DNS-1123, never a system namespace."""

from __future__ import annotations

import pytest

from valeria_hub.jobs.naming import (
    InvalidName,
    check_object_name,
    check_shared_namespace,
    generated_name,
    is_system_namespace,
    owner_label,
    random_suffix,
    user_namespace,
)
from valeria_hub.names import DNS_LABEL, LABEL_VALUE, dependent_name

USERS = [
    "a.b",
    "a-b",
    "a_b",
    "A-B",
    "alice",
    "Alice",
    "élodie",
    "x" * 200,
    "-",
    "ab@uni.ca",
    "日本",
]


def test_user_namespaces_are_distinct_dns_labels():
    names = [user_namespace("valeria-jobs-", u) for u in USERS]
    assert len(set(names)) == len(USERS)
    for n in names:
        assert DNS_LABEL.match(n) and len(n) <= 63
        assert n.startswith("valeria-jobs-")
        assert not is_system_namespace(n)


def test_owner_labels_are_distinct_label_values():
    labels = [owner_label(u) for u in USERS]
    assert len(set(labels)) == len(USERS)
    for label in labels:
        assert LABEL_VALUE.match(label) and len(label) <= 63


@pytest.mark.parametrize(
    "ns", ["default", "kube-system", "kube-public", "openshift-infra", "openshift"]
)
def test_system_namespaces_are_refused(ns):
    assert is_system_namespace(ns)
    with pytest.raises(InvalidName):
        check_shared_namespace(ns)


@pytest.mark.parametrize("prefix", ["kube-", "openshift-", "default-", "Bad_", "", "x" * 60])
def test_bad_prefixes_are_refused(prefix):
    with pytest.raises(InvalidName):
        user_namespace(prefix, "alice")


def test_object_names_and_generated_names():
    assert check_object_name("hello-1") == "hello-1"
    for bad in ["", "Hello", "-x", "x-", "a" * 64, "a.b"]:
        with pytest.raises(InvalidName):
            check_object_name(bad)
    suffix = random_suffix()
    assert len(suffix) == 5
    name = generated_name("my-job-", suffix)
    assert name == f"my-job-{suffix}"
    long = generated_name("y" * 80, suffix)
    assert len(long) == 63 and long.endswith(suffix)
    assert DNS_LABEL.match(generated_name("My_Job.", suffix))


def test_dependent_names_are_distinct_and_valid():
    names = {dependent_name(kind, job) for kind in ("s3", "code") for job in ("a", "a-b", "z" * 63)}
    assert len(names) == 6
    for n in names:
        assert DNS_LABEL.match(n) and len(n) <= 63
