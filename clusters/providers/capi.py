"""The `capi` provider: Cluster API objects in a registered management cluster.

Keelson applies the objects (server-side apply, field manager `keelson`), then follows
the `Cluster`'s phase and conditions into the Operation's log; when the
`<name>-kubeconfig` Secret appears it registers the workload cluster. Every step can run
again: apply is declarative, registration checks for a stored credential first.
"""

from __future__ import annotations

import base64
import time
from typing import Any, NoReturn

from django.conf import settings
from django.core.exceptions import ValidationError
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from clusters.choices import CredentialKind
from clusters.models import Cluster, ClusterCredential
from clusters.providers.base import ActionContext, Capabilities, ClusterSpec
from clusters.providers.capi_render import CAPI, pool_objects, render, validate_params
from clusters.services.credentials import cluster_api_client, credential_store
from core.celery import PermanentError, TransientError
from kube.apply import apply_manifest, delete_object, get_object, served_kind
from kube.client import ClusterConnectError, classify, timeout_kwargs
from kube.kubeconfig import KubeconfigError, connection_from_kubeconfig


def _raise(error: ClusterConnectError, doing: str) -> NoReturn:
    message = f"{doing}: {error.message}"
    if error.transient:
        raise TransientError(message)
    raise PermanentError(message)


def _conditions(status: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    return {
        c.get("type", ""): (c.get("status", ""), c.get("reason", ""), c.get("message", ""))
        for c in status.get("conditions") or []
    }


class CapiProvider:
    name = "capi"

    def capabilities(self) -> Capabilities:
        return Capabilities(
            update_pool=False,
            update_pool_reason="Cluster API replaces a pool's machines itself (a "
            "MachineDeployment's rolling update): Keelson does not drive node pool updates "
            "through the capi provider yet.",
        )

    def validate(self, spec: ClusterSpec) -> None:
        validate_params(spec)
        name = spec.params["management_cluster"]
        if not Cluster.objects.filter(name=name).exists():
            raise ValidationError(
                {"params": f"params.management_cluster: no registered cluster named {name!r}."}
            )

    # --- actions -------------------------------------------------------------------------

    def provision(self, ctx: ActionContext, spec: ClusterSpec) -> None:
        api = self._management(spec)
        self._apply(ctx, api, render(ctx.cluster.name, spec), start=5, end=30)
        self._follow(ctx, api, spec)
        self._register(ctx, api, spec)

    def scale(self, ctx: ActionContext, spec: ClusterSpec) -> None:
        api = self._management(spec)
        objects = pool_objects(render(ctx.cluster.name, spec))
        self._apply(ctx, api, objects, start=10, end=30)
        self._wait_pools(ctx, api, spec, objects)

    def upgrade(self, ctx: ActionContext, spec: ClusterSpec) -> None:
        """The control plane first, and the node pools once it reports the new version: a
        kubelet may be older than kube-apiserver, never newer (the version skew policy,
        https://kubernetes.io/releases/version-skew-policy/#kubelet)."""
        api = self._management(spec)
        rendered = render(ctx.cluster.name, spec)
        control_plane = next(o for o in rendered if o["kind"].endswith("ControlPlane"))
        self._apply(ctx, api, [control_plane], start=10, end=30)
        self._wait_version(ctx, api, control_plane, spec.kubernetes_version)
        self._apply(ctx, api, pool_objects(rendered), start=90, end=95)

    def delete(self, ctx: ActionContext, spec: ClusterSpec) -> None:
        api = self._management(spec)
        ref = self._ref(CAPI, "Cluster", ctx.cluster.name, self._namespace(spec))
        self._require_served(api, CAPI, "Cluster")
        try:
            if delete_object(api, ref, propagation="Foreground"):
                ctx.progress(20, "Cluster object deleted; waiting for Cluster API to tear it down")
        except ClusterConnectError as error:
            _raise(error, "Deleting the Cluster object")
        deadline = time.monotonic() + self._timeout(spec)
        while time.monotonic() < deadline:
            ctx.checkpoint()
            if self._get(api, ref, "Reading the Cluster object") is None:
                ctx.log("The Cluster object is gone")
                return
            time.sleep(settings.KEELSON_CAPI_POLL_SECONDS)
        raise PermanentError("The Cluster object is still there after the timeout.")

    # --- steps ---------------------------------------------------------------------------

    def _management(self, spec: ClusterSpec) -> k8s.ApiClient:
        name = spec.params["management_cluster"]
        management = Cluster.objects.filter(name=name).first()
        if management is None:
            raise PermanentError(f"The management cluster {name!r} is no longer registered.")
        try:
            return cluster_api_client(cluster=management)
        except ClusterConnectError as error:
            _raise(error, f"Connecting to the management cluster {name}")

    @staticmethod
    def _namespace(spec: ClusterSpec) -> str:
        return str(spec.params.get("namespace") or "default")

    @staticmethod
    def _timeout(spec: ClusterSpec) -> float:
        return float(spec.params.get("timeout_minutes", 60)) * 60

    @staticmethod
    def _ref(api_version: str, kind: str, name: str, namespace: str) -> dict[str, str]:
        return {"apiVersion": api_version, "kind": kind, "name": name, "namespace": namespace}

    @staticmethod
    def _require_served(api: k8s.ApiClient, api_version: str, kind: str) -> None:
        try:
            served = served_kind(api, api_version, kind)
        except ClusterConnectError as error:
            _raise(error, f"Looking up {kind} ({api_version}) in the management cluster")
        if served is None:
            raise PermanentError(
                f"The management cluster does not serve {kind} ({api_version}): is the Cluster "
                "API provider for it installed?"
            )

    @staticmethod
    def _get(api: k8s.ApiClient, ref: dict[str, str], doing: str) -> dict[str, Any] | None:
        try:
            return get_object(api, ref)
        except ClusterConnectError as error:
            _raise(error, doing)

    def _apply(
        self,
        ctx: ActionContext,
        api: k8s.ApiClient,
        objects: list[dict[str, Any]],
        *,
        start: int,
        end: int,
    ) -> None:
        for index, manifest in enumerate(objects, start=1):
            ctx.checkpoint()
            self._require_served(api, manifest["apiVersion"], manifest["kind"])
            try:
                apply_manifest(api, manifest)
            except ClusterConnectError as error:
                _raise(error, f"Applying {manifest['kind']} {manifest['metadata']['name']}")
            percent = start + (end - start) * index // len(objects)
            ctx.report(percent, None, f"applied {manifest['kind']}/{manifest['metadata']['name']}")
        ctx.progress(end, f"Applied {len(objects)} Cluster API objects")

    def _follow(self, ctx: ActionContext, api: k8s.ApiClient, spec: ClusterSpec) -> None:
        """Log phase and condition changes until the control plane is ready."""
        self._require_served(api, CAPI, "Cluster")
        ref = self._ref(CAPI, "Cluster", ctx.cluster.name, self._namespace(spec))
        seen_phase = ""
        seen: dict[str, tuple[str, str, str]] = {}
        deadline = time.monotonic() + self._timeout(spec)
        while time.monotonic() < deadline:
            ctx.checkpoint()
            obj = self._get(api, ref, "Reading the Cluster object")
            if obj is None:
                raise PermanentError(f"The Cluster object {ref['name']} is gone.")
            status = obj.get("status") or {}
            phase = status.get("phase", "")
            if phase != seen_phase:
                ctx.log(f"Cluster phase: {phase or 'Pending'}")
                seen_phase = phase
            conditions = _conditions(status)
            for kind, value in conditions.items():
                if seen.get(kind) != value:
                    state, reason, message = value
                    ctx.log(f"{kind}={state}" + (f" ({reason}: {message})" if reason else ""))
            seen = conditions
            if status.get("failureMessage") or phase == "Failed":
                reason = status.get("failureReason", "Failed")
                failure = status.get("failureMessage", "")
                raise PermanentError(f"Cluster API reports {reason}: {failure}")
            infrastructure = bool(status.get("infrastructureReady"))
            control_plane = bool(status.get("controlPlaneReady")) or (
                conditions.get("ControlPlaneReady", ("",))[0] == "True"
            )
            if control_plane and phase == "Provisioned":
                ctx.progress(80, "Control plane ready; waiting for its kubeconfig")
                return
            ctx.report(60 if infrastructure else 40, f"Provisioning ({phase or 'Pending'})", None)
            time.sleep(settings.KEELSON_CAPI_POLL_SECONDS)
        last = ", ".join(f"{k}={v[0]}" for k, v in seen.items()) or "no conditions"
        raise PermanentError(
            f"Not provisioned after {self._timeout(spec) / 60:.0f} min "
            f"(phase {seen_phase or 'Pending'}; {last})."
        )

    def _register(self, ctx: ActionContext, api: k8s.ApiClient, spec: ClusterSpec) -> None:
        core = k8s.CoreV1Api(api)
        secret_name = f"{ctx.cluster.name}-kubeconfig"
        deadline = time.monotonic() + self._timeout(spec)
        while time.monotonic() < deadline:
            ctx.checkpoint()
            try:
                secret = core.read_namespaced_secret(
                    secret_name, self._namespace(spec), **timeout_kwargs()
                )
                break
            except ApiException as error:
                if error.status != 404:
                    _raise(classify(error), f"Reading Secret {secret_name}")
            time.sleep(settings.KEELSON_CAPI_POLL_SECONDS)
        else:
            raise PermanentError(f"Secret {secret_name} did not appear before the timeout.")
        if ClusterCredential.objects.filter(cluster=ctx.cluster).exists():
            return
        try:
            kubeconfig = base64.b64decode((secret.data or {})["value"]).decode()
            connection = connection_from_kubeconfig(kubeconfig)
        except (KeyError, ValueError, KubeconfigError) as error:
            detail = str(error) if isinstance(error, KubeconfigError) else "no usable 'value' key"
            raise PermanentError(
                f"Secret {secret_name} holds no usable kubeconfig: {detail}"
            ) from None
        credential_store(cluster=ctx.cluster, spec=connection, kind=CredentialKind.KUBECONFIG)
        ctx.cluster.api_server_url = connection.server
        ctx.cluster.save(update_fields=["api_server_url", "updated_at"])
        ctx.progress(90, f"Registered the workload cluster at {connection.server}")

    def _wait_pools(
        self,
        ctx: ActionContext,
        api: k8s.ApiClient,
        spec: ClusterSpec,
        objects: list[dict[str, Any]],
    ) -> None:
        deadline = time.monotonic() + self._timeout(spec)
        while time.monotonic() < deadline:
            ctx.checkpoint()
            pending = []
            for manifest in objects:
                self._require_served(api, manifest["apiVersion"], manifest["kind"])
                ref = self._ref(
                    manifest["apiVersion"],
                    manifest["kind"],
                    manifest["metadata"]["name"],
                    self._namespace(spec),
                )
                obj = self._get(api, ref, f"Reading {ref['kind']} {ref['name']}") or {}
                wanted = manifest["spec"]["replicas"]
                ready = (obj.get("status") or {}).get("readyReplicas", 0) or 0
                if ready != wanted:
                    pending.append(f"{manifest['metadata']['name']} {ready}/{wanted}")
            if not pending:
                ctx.progress(90, "Every node pool has its replicas ready")
                return
            ctx.report(50, "Waiting for " + ", ".join(pending), None)
            time.sleep(settings.KEELSON_CAPI_POLL_SECONDS)
        raise PermanentError("Node pools did not reach their size before the timeout.")

    def _wait_version(
        self, ctx: ActionContext, api: k8s.ApiClient, control_plane: dict[str, Any], version: str
    ) -> None:
        self._require_served(api, control_plane["apiVersion"], control_plane["kind"])
        ref = self._ref(
            control_plane["apiVersion"],
            control_plane["kind"],
            control_plane["metadata"]["name"],
            control_plane["metadata"]["namespace"],
        )
        deadline = time.monotonic() + float(60 * 60)
        while time.monotonic() < deadline:
            ctx.checkpoint()
            obj = self._get(api, ref, f"Reading {ref['kind']} {ref['name']}") or {}
            current = (obj.get("status") or {}).get("version", "")
            if current == version:
                ctx.progress(90, f"Control plane at {version}")
                return
            ctx.report(50, f"Control plane at {current or 'unknown'}, upgrading to {version}", None)
            time.sleep(settings.KEELSON_CAPI_POLL_SECONDS)
        raise PermanentError(f"The control plane did not reach {version} within an hour.")
