"""Pod and container status documents, shaped like the real kubelet's.

KubeSpawner deserializes them with client-side validation, so every container status
carries name, image, imageID, ready, started, restartCount, state and lastState.
Pure functions over the kubelet's per-container bookkeeping.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any


def image_id(image: str) -> str:
    """A stable fake digest reference for an image name."""
    repo = image.rsplit("@", 1)[0]
    last = repo.rsplit("/", 1)[-1]
    if ":" in last:
        repo = repo[: len(repo) - len(last)] + last.split(":", 1)[0]
    digest = hashlib.sha256(image.encode()).hexdigest()
    return f"docker-pullable://{repo}@sha256:{digest}"


def pull_policy(container: dict[str, Any]) -> str:
    """imagePullPolicy with the API's default (Always for :latest or no tag)."""
    if container.get("imagePullPolicy"):
        return container["imagePullPolicy"]
    image = container.get("image", "")
    last = image.rsplit("/", 1)[-1]
    if "@" in image:
        return "IfNotPresent"
    if ":" not in last or last.endswith(":latest"):
        return "Always"
    return "IfNotPresent"


@dataclass
class ContainerRun:
    """The kubelet's record of one container across its restarts."""

    name: str
    image: str
    init: bool
    state: dict[str, Any] = field(default_factory=dict)
    last_state: dict[str, Any] = field(default_factory=dict)
    restart_count: int = 0
    ready: bool = False
    started: bool = False
    running: bool = False
    live: bool = False  # its current log file is still being written
    final: bool = False  # terminated and will not be restarted
    instance: int = -1  # index of the current/last log file
    container_id: str = ""
    resume_code: int | None = None  # exit code carried over from a previous kubelet

    @classmethod
    def from_spec(
        cls, spec: dict[str, Any], *, init: bool, previous: dict[str, Any] | None, waiting: str
    ) -> ContainerRun:
        run = cls(name=spec.get("name", ""), image=spec.get("image", ""), init=init)
        run.state = {"waiting": {"reason": waiting}}
        if not previous:
            return run
        run.restart_count = int(previous.get("restartCount") or 0)
        run.last_state = previous.get("lastState") or {}
        run.container_id = previous.get("containerID", "")
        state = previous.get("state") or {}
        if "running" in state:
            # our process died with the previous kubelet: like a node restart
            run.state = {
                "terminated": {
                    "exitCode": 255,
                    "reason": "Unknown",
                    "startedAt": state["running"].get("startedAt"),
                    "finishedAt": None,
                    "containerID": run.container_id,
                }
            }
            run.resume_code = 255
        elif "terminated" in state:
            run.state = state
            run.resume_code = int(state["terminated"].get("exitCode", 0))
        elif "terminated" in run.last_state:
            run.resume_code = int(run.last_state["terminated"].get("exitCode", 0))
        run.instance = run.restart_count
        return run

    def new_container_id(self) -> str:
        self.container_id = "containerd://" + secrets.token_hex(32)
        return self.container_id

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "image": self.image,
            "imageID": image_id(self.image),
            "ready": self.ready,
            "started": self.started and self.running,
            "restartCount": self.restart_count,
            "state": self.state,
            "lastState": self.last_state,
        }
        if self.container_id:
            out["containerID"] = self.container_id
        return out


def _condition(
    kind: str, ok: bool, previous: dict[str, dict], now: str, reason: str = "", message: str = ""
) -> dict[str, Any]:
    status = "True" if ok else "False"
    prev = previous.get(kind)
    since = prev["lastTransitionTime"] if prev and prev.get("status") == status else now
    cond: dict[str, Any] = {
        "type": kind,
        "status": status,
        "lastProbeTime": None,
        "lastTransitionTime": since,
    }
    if not ok and reason:
        cond["reason"] = reason
        if message:
            cond["message"] = message
    elif ok and reason == "PodCompleted":
        cond["reason"] = reason
    return cond


def pod_conditions(
    previous: list[dict[str, Any]],
    *,
    phase: str,
    initialized: bool,
    inits: list[ContainerRun],
    mains: list[ContainerRun],
    now: str,
) -> list[dict[str, Any]]:
    """Initialized, Ready, ContainersReady and PodScheduled conditions."""
    prev = {c.get("type"): c for c in previous or []}
    done = phase in ("Succeeded", "Failed")
    unready = [r.name for r in mains if not r.ready]
    pending_inits = [
        r.name for r in inits if r.state.get("terminated", {}).get("exitCode") != 0 or not r.final
    ]
    if done:
        ready_reason, ready_msg = "PodCompleted", ""
    else:
        ready_reason = "ContainersNotReady"
        ready_msg = f"containers with unready status: [{' '.join(unready)}]"
    all_ready = not unready and not done
    conds = [
        _condition(
            "Initialized", initialized, prev, now, "ContainersNotInitialized",
            f"containers with incomplete status: [{' '.join(pending_inits)}]",
        ),
        _condition("Ready", all_ready, prev, now, ready_reason, ready_msg),
        _condition("ContainersReady", all_ready, prev, now, ready_reason, ready_msg),
    ]  # fmt: skip
    if done and initialized:
        conds[0]["reason"] = "PodCompleted"
    scheduled = prev.get("PodScheduled") or {
        "type": "PodScheduled",
        "status": "True",
        "lastProbeTime": None,
        "lastTransitionTime": now,
    }
    conds.append(scheduled)
    return conds


def qos_class(pod: dict[str, Any]) -> str:
    """BestEffort / Burstable / Guaranteed from the containers' resources."""
    containers = pod.get("spec", {}).get("containers") or []
    any_set, guaranteed = False, True
    for c in containers:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        if req or lim:
            any_set = True
        for r in ("cpu", "memory"):
            if r not in lim or req.get(r, lim[r]) != lim[r]:
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"
