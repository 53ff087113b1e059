"""The agent's loop. It holds only its own cluster's kubeconfig and its hub token, which
it keeps in a 0600 state file and never logs.

Each cycle: rotate the token when half its life has passed, heartbeat with the inventory,
apply the hub's work and report it, evaluate the policies targeting the cluster when due
and report them. When the hub cannot be reached the agent keeps applying the last work it
received and evaluating the last policies, and queues its reports (bounded, oldest
dropped first) in its state directory; they are sent, in order, once the hub answers.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import random
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes import config as kube_config

from agent.policies import evaluate as evaluate_policies
from kube.client import ClusterConnectError
from kube.inventory import collect
from kube.ownership import APP_LABEL, VERSION_ANNOTATION, object_ref, remove_managed_objects
from kube.sync import apply_objects, workload_status

logger = logging.getLogger("keelson.agent")
# Seconds between fetches of the policies targeting this cluster: how soon a policy edit
# or the hub's "evaluate" reaches a pull cluster.
POLICY_POLL = 60
# Reports kept while the hub is unreachable; past it the oldest are dropped.
OUTBOX_LIMIT = 200
# What the state Secret keeps: the credential and what was applied (not the timers).
SECRET_KEYS = (
    "cluster",
    "agent_token",
    "heartbeat_interval",
    "token_expires_at",
    "token_issued_at",
    "applied",
    "policies_key",
)


class AgentRefused(Exception):
    """The hub refused the agent (revoked or unknown token): stop, do not retry."""


class HubUnavailable(Exception):
    """The hub did not answer or answered 5xx: retry with backoff."""


class Deregistered(Exception):
    """The cluster was deregistered after this agent's cleanup: stop."""


def load_cluster_client(kubeconfig: str | None, context: str | None) -> k8s.ApiClient:
    """In-cluster service account first (when no kubeconfig is given), then kubeconfig."""
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        configuration = k8s.Configuration()
        kube_config.load_incluster_config(client_configuration=configuration)
        return k8s.ApiClient(configuration)
    return kube_config.new_client_from_config(config_file=kubeconfig, context=context)


def _write_private(path: Path, data: Any) -> None:
    """Write JSON to `path` (0600) atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump(data, file)
    temporary.replace(path)


def _read(path: Path, default: Any) -> Any:
    if not path.exists():
        return default
    try:
        return json.loads(path.read_text())
    except ValueError:
        logger.warning("ignoring the unreadable %s", path.name)
        return default


class Agent:
    def __init__(
        self,
        *,
        hub: str,
        state_dir: Path,
        kubeconfig: str | None = None,
        context: str | None = None,
        hub_ca: str | None = None,
        api: k8s.ApiClient | None = None,
        state_secret: str | None = None,
    ) -> None:
        self.hub = hub.rstrip("/")
        self.state_dir = state_dir
        self.state_file = state_dir / "agent.json"
        self.work_file = state_dir / "work.json"  # last work and policies received
        self.outbox_file = state_dir / "outbox.json"  # reports waiting for the hub
        self.api = api if api is not None else load_cluster_client(kubeconfig, context)
        self.http = urllib3.PoolManager(
            ca_certs=hub_ca, timeout=urllib3.Timeout(connect=5, read=30), retries=False
        )
        # "namespace/name" of a Secret holding the credential, for a container whose
        # state directory does not outlive it (the install manifest's Deployment).
        self.state_secret = tuple(state_secret.split("/", 1)) if state_secret else None
        self.state: dict[str, Any] = _read(self.state_file, {}) or self._secret_state()
        self._secret_copy = {k: self.state.get(k) for k in SECRET_KEYS}
        self.interval = int(self.state.get("heartbeat_interval", 30))

    # --- state -------------------------------------------------------------------------

    def _save_state(self) -> None:
        _write_private(self.state_file, self.state)
        copy = {k: self.state.get(k) for k in SECRET_KEYS}
        if self.state_secret and copy != self._secret_copy:
            namespace, name = self.state_secret
            data = base64.b64encode(json.dumps(copy).encode()).decode()
            k8s.CoreV1Api(self.api).patch_namespaced_secret(
                name, namespace, {"data": {"agent.json": data}}
            )
            self._secret_copy = copy

    def _secret_state(self) -> dict[str, Any]:
        if not self.state_secret:
            return {}
        namespace, name = self.state_secret
        secret = k8s.CoreV1Api(self.api).read_namespaced_secret(name, namespace)
        stored = (secret.data or {}).get("agent.json")
        if not stored:
            return {}
        state: dict[str, Any] = json.loads(base64.b64decode(stored))
        return {k: v for k, v in state.items() if v is not None}

    def _cached(self) -> dict[str, Any]:
        cached: dict[str, Any] = _read(self.work_file, {})
        return cached

    def _cache(self, key: str, value: Any) -> None:
        _write_private(self.work_file, {**self._cached(), key: value})

    def outbox(self) -> list[dict[str, Any]]:
        queued: list[dict[str, Any]] = _read(self.outbox_file, [])
        return queued

    def _queue(self, path: str, body: Any) -> None:
        queued = [*self.outbox(), {"path": path, "body": body, "at": time.time()}]
        if len(queued) > OUTBOX_LIMIT:
            logger.warning("report queue full: dropping %d oldest", len(queued) - OUTBOX_LIMIT)
            queued = queued[-OUTBOX_LIMIT:]
        _write_private(self.outbox_file, queued)

    # --- hub calls ---------------------------------------------------------------------

    def _request(self, method: str, path: str, body: Any, bearer: str | None) -> Any:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
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
        if response.status == 429 or response.status >= 500:
            raise HubUnavailable(f"hub answered {response.status}")
        if response.status >= 400:
            raise AgentRefused(f"the hub rejected the request ({response.status}): {message}")
        return payload

    def _call(self, method: str, path: str, body: Any = None, *, authenticate: bool = True) -> Any:
        bearer = self.state.get("agent_token") if authenticate else None
        try:
            return self._request(method, path, body, bearer)
        except AgentRefused as error:
            if not bearer or "expired" not in str(error):
                raise
        # The token expired while the hub was out of reach: trade it, then retry once.
        self.rotate()
        return self._request(method, path, body, self.state.get("agent_token"))

    def _report(self, path: str, body: Any) -> Any:
        """POST a report now, or queue it while the hub is unreachable."""
        try:
            self.flush()
            return self._call("POST", path, body)
        except HubUnavailable:
            self._queue(path, body)
            return None

    def flush(self) -> int:
        """Send queued reports in order; stops at the first the hub cannot take yet."""
        queued = self.outbox()
        sent = 0
        try:
            for entry in queued:
                try:
                    self._call("POST", entry["path"], entry["body"])
                except AgentRefused as error:
                    if "expired" in str(error) or "revoked" in str(error):
                        raise
                    logger.warning("the hub refused a queued report: %s", error)
                sent += 1
        finally:
            if queued:
                _write_private(self.outbox_file, queued[sent:])
                if sent:
                    logger.info("sent %d queued report(s)", sent)
        return sent

    def _keep_credential(self, reply: dict[str, Any]) -> None:
        self.state.update(
            cluster=reply["cluster"],
            agent_token=reply["agent_token"],
            heartbeat_interval=reply["heartbeat_interval"],
            token_expires_at=reply.get("token_expires_at"),
            token_issued_at=time.time(),
        )
        self.interval = int(reply["heartbeat_interval"])
        self._save_state()

    def enroll_if_needed(self, bootstrap_token: str) -> None:
        if self.state.get("agent_token"):
            return
        if not bootstrap_token:
            raise AgentRefused("not enrolled yet: pass --token with a bootstrap token")
        reply = self._call(
            "POST", "agent/enroll", {"bootstrap_token": bootstrap_token}, authenticate=False
        )
        self._keep_credential(reply)
        logger.info("enrolled as cluster %s", reply["cluster"])

    def rotate(self) -> None:
        """Trade the token for a new one. The old one keeps working until the new one is
        first used, so an answer lost on the way changes nothing."""
        reply = self._request("POST", "agent/rotate", None, self.state.get("agent_token"))
        self._keep_credential(reply)
        logger.info("rotated the agent token")

    def rotate_if_due(self, *, now: float | None = None) -> bool:
        """Rotate once half of the token's life has passed."""
        expires = self.state.get("token_expires_at")
        if not expires:
            return False
        now = time.time() if now is None else now
        ends = datetime.fromisoformat(expires).astimezone(UTC).timestamp()
        issued = float(self.state.get("token_issued_at") or now)
        if now < issued + (ends - issued) / 2:
            return False
        self.rotate()
        return True

    # --- the cycle ---------------------------------------------------------------------

    def heartbeat(self) -> dict[str, Any]:
        """One cycle. Raises HubUnavailable (after applying the last work offline) when the
        hub did not answer."""
        try:
            inventory = collect(self.api).as_json()
        except ClusterConnectError as error:
            # The hub marks the cluster from what we send; an agent that cannot read its own
            # cluster reports nothing and the hub's silence timer takes over.
            logger.warning("cannot read the local cluster: %s", error.message)
            raise HubUnavailable("local cluster unreadable") from None
        try:
            self.rotate_if_due()
            reply: dict[str, Any] = self._call("POST", "agent/heartbeat", {"inventory": inventory})
        except HubUnavailable:
            logger.warning("the hub is unreachable: applying the last work received")
            self.apply_work(online=False)
            self.evaluate_policies(online=False)
            raise
        self.interval = int(reply.get("heartbeat_interval", self.interval))
        logger.info("heartbeat: cluster %s is %s", reply.get("cluster"), reply.get("status"))
        self.flush()
        self.apply_work()
        self.evaluate_policies()
        return reply

    def _work(self, online: bool) -> dict[str, Any] | None:
        if online:
            try:
                work: dict[str, Any] = self._call("GET", "agent/work")
            except HubUnavailable:
                pass  # the last work received
            else:
                if "cleanup" not in work:
                    self._cache("work", work)
                return work
        cached: dict[str, Any] | None = self._cached().get("work")
        return cached

    def apply_work(self, *, online: bool = True) -> int:
        """Apply the hub's work (server-side apply), prune what left it, and report each
        application's status back (what the hub shows and rollouts wait for)."""
        work = self._work(online)
        if work is None:
            return 0
        if "cleanup" in work:
            self.cleanup(str(work["cleanup"]["operation"]))
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
            self._report("agent/work", {"applications": report})
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
        self._report("agent/work", {"applications": report})
        return len(result.refs)

    def evaluate_policies(self, *, online: bool = True, now: float | None = None) -> bool:
        """Fetch the policies targeting this cluster (every POLICY_POLL seconds) and judge
        them when they changed, when the hub asks, or every evaluate interval; report the
        results (queued while the hub is unreachable). True when it evaluated."""
        now = time.time() if now is None else now
        work: dict[str, Any] | None = None
        if online and now - float(self.state.get("policies_polled_at", 0)) >= POLICY_POLL:
            try:
                work = self._call("GET", "agent/policies")
            except HubUnavailable:
                work = None
            else:
                self.state["policies_polled_at"] = now
                self._cache("policies", {k: v for k, v in work.items() if k != "evaluate_now"})
        fresh = work is not None
        work = work or self._cached().get("policies")
        if not work:
            return False
        key = [[p["id"], p["generation"]] for p in work.get("policies") or []]
        interval = float(work.get("evaluate_interval", 600))
        due = (
            (fresh and work.get("evaluate_now"))
            or key != self.state.get("policies_key")
            or now - float(self.state.get("policies_evaluated_at", 0)) >= interval
        )
        if not due:
            self._save_state()
            return False
        evaluation = evaluate_policies(self.api, work)
        self.state["policies_key"] = key
        self.state["policies_evaluated_at"] = now
        self._save_state()
        reply = self._report("agent/policies", evaluation.as_json())
        logger.info(
            "policies: %d evaluated, %s, %d enforcement action(s)",
            len(evaluation.results),
            f"{reply.get('stored', 0)} stored" if reply is not None else "report queued",
            len(evaluation.actions),
        )
        return True

    def cleanup(self, operation: str) -> None:
        """The cluster is being deregistered with cleanup: remove every object labelled as
        Keelson's, report, and stop (the hub revokes this agent)."""
        logger.info("deregistration: removing Keelson's objects from the cluster")
        try:
            deleted = remove_managed_objects(self.api)
            body: dict[str, Any] = {"operation": operation, "deleted": deleted}
        except ClusterConnectError as error:
            body = {"operation": operation, "deleted": [], "error": error.message[:1000]}
        except Exception as error:  # the report says why; the hub fails the operation
            body = {"operation": operation, "deleted": [], "error": type(error).__name__}
        self._call("POST", "agent/cleanup", body)
        if body.get("error"):
            raise AgentRefused(f"cleanup failed: {body['error']}")
        for path in (self.state_file, self.work_file, self.outbox_file):
            path.unlink(missing_ok=True)
        if self.state_secret:
            self.state = {}
            self._save_state()
            self.state_file.unlink(missing_ok=True)
        logger.info("removed %d objects; the cluster is deregistered", len(body["deleted"]))
        raise Deregistered

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
