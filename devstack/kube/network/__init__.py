"""The pod network of ``KubeStandIn(network="netns")``: NetworkPolicy on real traffic.

Opt-in; the default (``network="loopback"``) keeps one loopback address per pod in the
host's network namespace, where everything reaches everything.

Addressing: each stand-in picks a random ``10.a.b.0/24`` overlapping no route or address
of the machine. ``.1`` is the node (held by the per-instance bridge ``vh<id>``), ``.2``
the source address of the kubelet's probes, ``.10`` the cluster DNS Service, and
workloads get ``.16`` and up. Each pod (and each endpoint, below) gets its own network
namespace with ``eth0`` holding ``<ip>/32`` and a default route via the node; the host
end of the veth (``vh<id>p<n>``) carries a /32 route to the pod. The status keeps the
address in ``status.podIP``; a process listening on 0.0.0.0 in its namespace is only
reachable at its pod IP, so the loopback mode's 0.0.0.0 rewrite is off.

Why routed rather than bridged: with /32 addresses and the node as the only next hop,
every packet between two pods is IP-forwarded by the host and crosses the ``inet``
forward hook, where conntrack and NAT work as usual. L2 bridging would bypass the IP
hooks unless ``br_netfilter`` were switched on (a machine-wide sysctl shared with other
test runs). Forwarding is enabled per veth (``conf/<if>/forwarding``); the host's
global ``ip_forward`` is left alone, so pods reach the host's addresses (the node, a
test's "S3" server) but not other machines.

Policies (policy.py, pure) become one nftables table ``inet vh<id>`` (nft.py, pure),
replaced atomically whenever a pod gets or loses an address, a NetworkPolicy changes, a
pod's or a Namespace's labels change (debounced). Replies of allowed connections pass
(conntrack). IPv6 on the pods' interfaces is dropped.

Traffic from the node: OpenShift (OVN-Kubernetes) lets the kubelet's health probes in
whatever the policies say; here they come from the probe address, which always passes.
Any other process of the host reaches pods from the node address and is subject to the
policies like any source outside the cluster: only an ``ipBlock`` covering the node
address lets it in. So a pod whose policy admits only pods labelled
``component=proxy`` refuses the host. (``node_allowed=True`` lets all node traffic in,
like the Kubernetes API reference allows implementations to.) To run a host-side
process as a labelled peer, register it with :meth:`PodNetwork.add_endpoint`, run it
under the endpoint's ``exec_prefix()`` (nsenter, as root), and it is policed and
selected like a pod with those labels. ``run_prefix()`` adds a private mount namespace
with the cluster DNS in /etc/resolv.conf, so the process resolves Service names as a pod
does: ``DevStack(network="netns").add_hub_pod()`` runs the hub, its proxy and its managed
services that way, as the template's hub pod (tests/e2e/test_pod_network.py).

Cluster DNS (dns.py): an in-process server whose sockets live in the network namespace
of an endpoint ``openshift-dns/dns-default`` labelled like OpenShift's DNS pods,
answering on 5353; pods get an /etc/resolv.conf (bind-mounted by the shim) naming the
Service address on port 53, which the node DNATs to the DNS pod's 5353. As with OVN, the
policies see the translated port: an egress policy must allow 5353 (UDP and TCP) to the
DNS pods; one that allows only 53 breaks name resolution.

Leaving nothing behind: ``stop()`` removes every namespace, link, the table and the
files; an ``atexit`` hook does the same when the process ends without stopping; a
starting instance removes the leftovers of instances whose owner process is gone
(``/run/devstack-kube-net/<id>.json``) and of a previous one with its own name.

Refusing: ``start()`` probes (root, ``ip netns add``, veth pairs, nftables with
conntrack and NAT, nsenter/unshare) and raises RuntimeError naming what is missing.
"""

from __future__ import annotations

from .podnet import Attachment, PodNetwork

__all__ = ["Attachment", "PodNetwork"]
