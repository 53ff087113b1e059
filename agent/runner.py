"""The agent's loop. It holds only its own cluster's kubeconfig and its hub token, which
it keeps in a 0600 state file and never logs."""

from __future__ import annotations

import json
import logging
import os
import random
import time
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes import config as kube_config

from kube.client import ClusterConnectError
from kube.inventory import collect
from kube.ownership import APP_LABEL, VERSION_ANNOTATION, object_ref
from kube.sync import apply_objects, workload_status

logger = logging.getLogger("keelson.agent")


class AgentRefused(Exception):
    """The hub refused the agent (revoked or unknown token): stop, do not retry."""


class HubUnavailable(Exception):
    """The hub did not answer or answered 5xx: retry with backoff."""


def load_cluster_client(kubeconfig: str | None, context: str | None) -> k8s.ApiClient:
    """In-cluster service account first (when no kubeconfig is given), then kubeconfig."""
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        configuration = k8s.Configuration()
        kube_config.load_incluster_config(client_configuration=configuration)
        return k8s.ApiClient(configuration)
    return kube_config.new_client_from_config(config_file=kubeconfig, context=context)


class Agent:
    def __init__(
        self,
        *,
        hub: str,
        state_dir: Path,
        kubeconfig: str | None = None,
        context: str | None = None,
        hub_ca: str | None = None,
    ) -> None:
        self.hub = hub.rstrip("/")
        self.state_file = state_dir / "agent.json"
        self.api = load_cluster_client(kubeconfig, context)
        self.http = urllib3.PoolManager(
            ca_certs=hub_ca, timeout=urllib3.Timeout(connect=5, read=30), retries=False
        )
        self.state: dict[str, Any] = self._load_state()
        self.interval = int(self.state.get("heartbeat_interval", 30))

    # --- state -------------------------------------------------------------------------

    def _load_state(self) -> dict[str, Any]:
        if not self.state_file.exists():
            return {}
        state: dict[str, Any] = json.loads(self.state_file.read_text())
        return state

    def _save_state(self) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = self.state_file.with_suffix(".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            json.dump(self.state, file)
        temporary.replace(self.state_file)

    # --- hub calls ---------------------------------------------------------------------

    def _call(self, method: str, path: str, body: Any = None, *, authenticate: bool = True) -> Any:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        bearer = self.state.get("agent_token") if authenticate else None
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        try:
            response = self.http.request(
                method,
                f"{self.hub}/api/v1/{path}",
                body=json.dumps(body) if body is not None else None,
                headers=headers,
            )
        except urllib3.exceptions.HTTPError as error:
            raise HubUnavailable(f"hub unreachable: {type(error).__name__}") from None
        try:
            payload = json.loads(response.data or b"{}")
        except ValueError:
            payload = {}
        message = (
            (payload.get("error") or {}).get("message", "") if isinstance(payload, dict) else ""
        )
        if response.status in (401, 403):
            raise AgentRefused(f"the hub refused this agent: {message or response.status}")
        if response.status >= 500:
            raise HubUnavailable(f"hub answered {response.status}")
        if response.status >= 400:
            raise AgentRefused(f"the hub rejected the request ({response.status}): {message}")
        return payload

    def enroll_if_needed(self, bootstrap_token: str) -> None:
        if self.state.get("agent_token"):
            return
        if not bootstrap_token:
            raise AgentRefused("not enrolled yet: pass --token with a bootstrap token")
        reply = self._call(
            "POST", "agent/enroll", {"bootstrap_token": bootstrap_token}, authenticate=False
        )
        self.state = {
            "cluster": reply["cluster"],
            "agent_token": reply["agent_token"],
            "heartbeat_interval": reply["heartbeat_interval"],
        }
        self.interval = int(reply["heartbeat_interval"])
        self._save_state()
        logger.info("enrolled as cluster %s", reply["cluster"])

    def heartbeat(self) -> dict[str, Any]:
        try:
            inventory = collect(self.api).as_json()
        except ClusterConnectError as error:
            # The hub marks the cluster from what we send; an agent that cannot read its own
            # cluster reports nothing and the hub's silence timer takes over.
            logger.warning("cannot read the local cluster: %s", error.message)
            raise HubUnavailable("local cluster unreadable") from None
        reply: dict[str, Any] = self._call("POST", "agent/heartbeat", {"inventory": inventory})
        self.interval = int(reply.get("heartbeat_interval", self.interval))
        logger.info("heartbeat: cluster %s is %s", reply.get("cluster"), reply.get("status"))
        self.apply_work()
        return reply

    def apply_work(self) -> int:
        """Apply the hub's work (server-side apply), prune what left it, and report each
        application's status back (what the hub shows and rollouts wait for)."""
        work = self._call("GET", "agent/work")
        objects = list(work.get("objects", []))
        report: dict[str, dict[str, Any]] = {}
        try:
            result = apply_objects(self.api, objects, previous=self.state.get("applied", []))
        except ClusterConnectError as error:
            logger.warning("could not apply the work: %s", error.message)
            for obj in objects:
                app = (obj.get("metadata", {}).get("labels") or {}).get(APP_LABEL)
                if app:
                    report[app] = {"error": error.message[:500]}
            self._call("POST", "agent/work", {"applications": report})
            return 0
        self.state["applied"] = result.refs
        self._save_state()
        by_app: dict[str, tuple[str, list[dict[str, str]]]] = {}
        for obj in objects:
            metadata = obj.get("metadata", {})
            app = (metadata.get("labels") or {}).get(APP_LABEL)
            if app:
                version = (metadata.get("annotations") or {}).get(VERSION_ANNOTATION, "")
                by_app.setdefault(app, (version, []))[1].append(object_ref(obj))
        for app, (version, refs) in by_app.items():
            try:
                status = workload_status(self.api, refs)
            except ClusterConnectError as error:
                report[app] = {"version": version, "error": error.message[:500]}
                continue
            report[app] = {
                "version": version,
                "desired": status.desired,
                "available": status.available,
                "complete": status.complete,
                "message": "; ".join(status.problems[:3]),
            }
        self._call("POST", "agent/work", {"applications": report})
        return len(result.refs)

    def run_forever(self) -> None:
        failures = 0
        while True:
            try:
                self.heartbeat()
                failures = 0
                delay = float(self.interval)
            except HubUnavailable as error:
                failures += 1
                delay = min(self.interval, 2**failures) + random.uniform(0, 1)  # noqa: S311
                logger.warning("%s; retrying in %.0f s", error, delay)
            time.sleep(delay)
