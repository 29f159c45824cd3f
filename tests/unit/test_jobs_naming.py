"""Names of the jobs service (pure): collision-free, DNS-1123, never a system namespace."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from valeria_hub.jobs.naming import (
    MAX_CRONJOB_NAME,
    MAX_JOB_NAME,
    TAG_LENGTH,
    InvalidName,
    check_object_name,
    check_shared_namespace,
    generated_name,
    is_system_namespace,
    name_tag,
    owner_label,
    personal_name,
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


# -- shared namespace: every name ends with its person's tag ------------------------------
CRON_RUN = re.compile(r"-[0-9]+$")  # the CronJob controller's <cronjob>-<minutes since epoch>
NAMES = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?", fullmatch=True)


def test_tags_are_distinct_hold_a_letter_and_make_names_personal():
    tags = [name_tag(u) for u in USERS]
    assert len(set(tags)) == len(USERS)
    for tag in tags:
        assert len(tag) == TAG_LENGTH and DNS_LABEL.match(tag)
        assert re.search(r"[a-z]", tag) and not tag.isdigit()
    names = {personal_name("same-name", u, MAX_JOB_NAME) for u in USERS}
    assert len(names) == len(USERS)
    alice = personal_name("same-name", "alice", MAX_JOB_NAME)
    assert alice == f"same-name-{name_tag('alice')}"
    # read back and resubmitted, a name keeps its tag (once); someone else's gets theirs
    assert personal_name(alice, "alice", MAX_JOB_NAME) == alice
    assert personal_name(alice, "bob", MAX_JOB_NAME) == f"{alice}-{name_tag('bob')}"


def test_personal_names_leave_room_for_the_tag_or_name_the_field():
    room = MAX_CRONJOB_NAME - TAG_LENGTH - 1
    assert len(personal_name("c" * room, "alice", MAX_CRONJOB_NAME)) == MAX_CRONJOB_NAME
    with pytest.raises(InvalidName, match=rf"metadata.name .* longer than {room} characters"):
        personal_name("c" * (room + 1), "alice", MAX_CRONJOB_NAME)
    job_room = MAX_JOB_NAME - TAG_LENGTH - 1
    assert len(personal_name("j" * job_room, "bob", MAX_JOB_NAME)) == MAX_JOB_NAME
    with pytest.raises(InvalidName, match="metadata.name"):
        personal_name("j" * (job_room + 1), "bob", MAX_JOB_NAME)


@settings(max_examples=300, deadline=None)
@given(
    cronjob=NAMES,
    owner=st.sampled_from(USERS),
    other=st.sampled_from(USERS),
    minutes=st.integers(min_value=10**7, max_value=10**12),
    extra=st.sampled_from(["", "-x", "-0", "-u", "-1234"]),
)
def test_nobody_can_obtain_the_name_of_a_cronjob_run(cronjob, owner, other, minutes, extra):
    """Whatever name someone asks for (the run's own, or one built to end like it), the
    name they get ends with their tag, which holds a letter, and a run's name ends with
    digits: no name anyone can make is ever a CronJob run's, their own runs' included."""
    run = f"{personal_name(cronjob, owner, MAX_CRONJOB_NAME)}-{minutes}"
    assert CRON_RUN.search(run) and len(run) <= MAX_JOB_NAME
    for asked in (run, run[: len(run) - len(str(minutes)) - 1] + extra, f"{cronjob}-{minutes}"):
        try:
            got = personal_name(asked, other, MAX_JOB_NAME)
        except InvalidName:
            continue  # too long: refused, nothing made
        assert got != run and not CRON_RUN.search(got)
        assert got.endswith(f"-{name_tag(other)}")
