"""Checking a new cluster before anything is stored: reachable, TLS, authenticated, allowed."""

from __future__ import annotations

from dataclasses import dataclass, field

from kubernetes import client as k8s

from kube.client import ClusterConnectError, classify, timeout_kwargs

# (verb, group, resource): what inventory and health collection need. Without these a
# registration is refused.
REQUIRED: tuple[tuple[str, str, str], ...] = (
    ("list", "", "nodes"),
    ("list", "", "namespaces"),
    ("list", "", "pods"),
    ("list", "", "events"),
    ("list", "apps", "deployments"),
    ("list", "apps", "statefulsets"),
    ("list", "apps", "daemonsets"),
)
# What placement and policy enforcement need; missing ones are reported, not refused
# (a read-only registration is a legitimate choice).
WRITE: tuple[tuple[str, str, str], ...] = (
    ("create", "", "namespaces"),
    ("patch", "apps", "deployments"),
    ("delete", "apps", "deployments"),
    ("patch", "", "configmaps"),
)


@dataclass
class AccessReport:
    server: str
    kubernetes_version: str
    missing_write: list[str] = field(default_factory=list)

    @property
    def read_only(self) -> bool:
        return bool(self.missing_write)


def _describe(verb: str, group: str, resource: str) -> str:
    return f"{verb} {resource}" + (f".{group}" if group else "")


def _allowed(api: k8s.ApiClient, verb: str, group: str, resource: str) -> bool:
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"verb": verb, "group": group, "resource": resource}},
    }
    result = k8s.AuthorizationV1Api(api).create_self_subject_access_review(
        review, **timeout_kwargs()
    )
    return bool(result.status.allowed)


def verify_access(api: k8s.ApiClient, server: str) -> AccessReport:
    """Raise ClusterConnectError naming the first check that fails."""
    try:
        version = k8s.VersionApi(api).get_code(**timeout_kwargs()).git_version
    except Exception as error:
        raised = classify(error, server)
        if raised.code not in ("unauthorized", "forbidden"):
            raise raised from None
        version = ""  # /version itself needs auth on some clusters; the review tells
    try:
        missing = [check for check in REQUIRED if not _allowed(api, *check)]
        missing_write = [_describe(*check) for check in WRITE if not _allowed(api, *check)]
    except Exception as error:
        raised = classify(error, server)
        if raised.code == "forbidden":
            raised = ClusterConnectError(
                "unauthorized",
                f"The API server {server} did not accept the credentials as a user "
                "(anonymous access only): check the token or client certificate.",
            )
        raise raised from None
    if missing:
        names = ", ".join(_describe(*check) for check in missing)
        raise ClusterConnectError(
            "forbidden",
            f"The credentials authenticate but lack permissions Keelson needs: {names}. "
            "Bind them to a role that allows at least these (cluster-wide).",
        )
    return AccessReport(server=server, kubernetes_version=version, missing_write=missing_write)
