"""Whether a cluster's control plane is a provider's managed service (EKS, GKE, AKS), from
what the cluster itself shows: the API server's host name and the version string the
managed services stamp on their builds. A self-managed control plane on the same cloud
(kubeadm, k3s, Rancher, OpenShift) shows neither and pays no managed fee."""

from __future__ import annotations

from urllib.parse import urlsplit

# (provider, managed service, API server host suffixes, version markers)
_FACTS: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("aws", "eks", (".eks.amazonaws.com", ".eks.amazonaws.com.cn"), ("-eks-",)),
    ("gcp", "gke", (".gke.goog",), ("-gke.",)),
    ("azure", "aks", (".azmk8s.io",), ()),
)


def managed_service(*, provider: str, api_server_url: str, kubernetes_version: str) -> str:
    """ "eks", "gke", "aks", or "" when nothing shows a managed control plane."""
    host = (urlsplit(api_server_url).hostname or "").lower()
    version = kubernetes_version.lower()
    for cloud, service, suffixes, markers in _FACTS:
        if provider != cloud:
            continue
        if any(host.endswith(suffix) for suffix in suffixes):
            return service
        if any(marker in version for marker in markers):
            return service
    return ""
