"""`python -m agent --hub URL --token T`: enroll, then heartbeat with inventory."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agent.settings")

from agent.runner import Agent, AgentRefused, Deregistered, HubUnavailable


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m agent",
        description="Keelson pull-mode agent: connects this cluster to a Keelson hub.",
    )
    parser.add_argument("--hub", required=True, help="the hub's URL, e.g. https://keelson.example")
    parser.add_argument(
        "--token",
        default=os.environ.get("KEELSON_BOOTSTRAP_TOKEN", ""),
        help="one-time bootstrap token (first run only; or KEELSON_BOOTSTRAP_TOKEN)",
    )
    parser.add_argument(
        "--kubeconfig",
        default=None,
        help="kubeconfig of this cluster (default: in-cluster, $KUBECONFIG, ~/.kube/config)",
    )
    parser.add_argument("--context", default=None, help="kubeconfig context")
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(os.environ.get("KEELSON_AGENT_STATE", "~/.config/keelson-agent")).expanduser(),
        help="where the agent keeps its credential (0600)",
    )
    parser.add_argument(
        "--state-secret",
        default=os.environ.get("KEELSON_AGENT_STATE_SECRET"),
        help="namespace/name of a Secret that keeps the credential across restarts",
    )
    parser.add_argument("--hub-ca", default=None, help="CA bundle to verify the hub's TLS")
    parser.add_argument("--once", action="store_true", help="one heartbeat, then exit")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s keelson-agent: %(message)s",
    )
    agent = Agent(
        hub=args.hub,
        state_dir=args.state_dir,
        kubeconfig=args.kubeconfig,
        context=args.context,
        hub_ca=args.hub_ca,
        state_secret=args.state_secret,
    )
    try:
        agent.enroll_if_needed(args.token)
        if args.once:
            agent.heartbeat()
            return 0
        agent.run_forever()
    except AgentRefused as error:
        logging.getLogger(__name__).error("%s", error)
        return 3
    except HubUnavailable as error:  # --once only: run_forever retries
        logging.getLogger(__name__).error("%s", error)
        return 4
    except Deregistered:
        return 0
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
