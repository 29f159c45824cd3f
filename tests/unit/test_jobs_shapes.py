"""client_shape gives exactly what the Python client's to_dict() gives (kbatch reads it)."""

import asyncio

import pytest
from kubernetes_asyncio.client import ApiClient

from valeria_hub.jobs.shapes import client_shape, iso_datetimes

JOB = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {
        "name": "train-1",
        "namespace": "valeria-alice-1a2b",
        "labels": {"valeria.io/owner": "alice", "app.kubernetes.io/managed-by": "valeria-jobs"},
        "annotations": {"valeria.io/username": "alice"},
        "creationTimestamp": "2026-11-22T11:26:31Z",
        "uid": "0b6a7c2e-1f3d-4c5a-9e8b-a11ce0000001",
        "resourceVersion": "42",
    },
    "spec": {
        "backoffLimit": 0,
        "activeDeadlineSeconds": 3600,
        "template": {
            "metadata": {"labels": {"job-name": "train-1"}},
            "spec": {
                "restartPolicy": "Never",
                "securityContext": {"runAsUser": 1001, "runAsNonRoot": True},
                "containers": [
                    {
                        "name": "job",
                        "image": "python:3.11",
                        "command": ["python", "train.py"],
                        "env": [
                            {
                                "name": "AWS_ACCESS_KEY_ID",
                                "valueFrom": {
                                    "secretKeyRef": {
                                        "name": "s3-train-1",
                                        "key": "AWS_ACCESS_KEY_ID",
                                    }
                                },
                            }
                        ],
                        "resources": {"limits": {"cpu": "1", "memory": "2G"}},
                        "volumeMounts": [{"name": "nfs-home", "mountPath": "/home/alice"}],
                    }
                ],
                "volumes": [{"name": "nfs-home", "nfs": {"server": "nfs", "path": "/export"}}],
            },
        },
    },
    "status": {
        "startTime": "2026-11-22T11:26:32Z",
        "active": 1,
        "conditions": [
            {"type": "Complete", "status": "True", "lastTransitionTime": "2026-11-22T11:27:00Z"}
        ],
    },
}


def to_dict(data: dict, type_name: str) -> dict:
    async def run() -> dict:
        async with ApiClient() as api:
            model = api._ApiClient__deserialize(data, type_name)
            return iso_datetimes(model.to_dict())

    return asyncio.run(run())


@pytest.mark.parametrize(
    "data, type_name",
    [
        (JOB, "V1Job"),
        (
            {
                "apiVersion": "batch/v1",
                "kind": "JobList",
                "metadata": {"resourceVersion": "9"},
                "items": [JOB, JOB],
            },
            "V1JobList",
        ),
        ({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": []}, "V1PodList"),
    ],
)
def test_same_shape_as_the_clients_to_dict(data, type_name):
    assert client_shape(data, type_name) == to_dict(data, type_name)


def test_free_form_maps_keep_their_keys():
    shaped = client_shape(JOB, "V1Job")
    assert shaped["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "valeria-jobs"
    assert shaped["metadata"]["creation_timestamp"] == "2026-11-22T11:26:31+00:00"
    assert shaped["spec"]["template"]["spec"]["security_context"]["run_as_user"] == 1001
