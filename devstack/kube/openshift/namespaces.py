"""Every namespace gets its own uid, supplemental-group and SELinux MCS ranges, as
OpenShift's namespace controller gives them; SCC admission reads them.

OpenShift allocates blocks of 10,000 ids from 1000000000-1999999999 and writes them as
annotations (``openshift.io/sa.scc.uid-range: 1000650000/10000``). Here the allocation
happens when the namespace is created (OpenShift's controller does it moments later):
the lowest block no other namespace holds. An annotation the creator set is kept, as
the controller keeps it.
"""

from __future__ import annotations

from ..admission import Admission, Request

UID_RANGE = "openshift.io/sa.scc.uid-range"
SUPPLEMENTAL_GROUPS = "openshift.io/sa.scc.supplemental-groups"
MCS = "openshift.io/sa.scc.mcs"
RANGE_START = 1_000_000_000
BLOCK = 10_000
BLOCKS = 100_000  # 1000000000..1999999999


def block_of(value: str) -> int | None:
    """The block index of a ``start/size`` range annotation, None if it is not ours."""
    start, _, size = value.partition("/")
    if not (start.isdigit() and size == str(BLOCK)):
        return None
    offset = int(start) - RANGE_START
    return offset // BLOCK if offset >= 0 and offset % BLOCK == 0 else None


def mcs_label(block: int) -> str:
    """A distinct MCS pair per block, like the controller's ``s0:c26,c0`` labels."""
    first, second = divmod(block, 1024)
    return f"s0:c{first + 1},c{second}"


class NamespaceRanges:
    """Mutating: a new Namespace gets its uid, supplemental-group and MCS ranges."""

    name = "openshift.io/NamespaceRanges"

    def admit(self, req: Request, chain: Admission) -> None:
        if req.kind.kind != "Namespace" or req.operation != "CREATE":
            return
        annotations = req.obj["metadata"].setdefault("annotations", {})
        if UID_RANGE in annotations:
            return
        items, _ = chain.store.list("v1/namespaces")
        taken = {
            block_of(((ns["metadata"].get("annotations") or {}).get(UID_RANGE)) or "")
            for ns in items
        }
        block = next(b for b in range(BLOCKS) if b not in taken)
        value = f"{RANGE_START + block * BLOCK}/{BLOCK}"
        annotations[UID_RANGE] = value
        annotations.setdefault(SUPPLEMENTAL_GROUPS, value)
        annotations.setdefault(MCS, mcs_label(block))

    def validate(self, req: Request, chain: Admission) -> None:
        return None
