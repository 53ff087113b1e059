"""`python -m localkube up -n 2`: run local clusters until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
from pathlib import Path

from localkube.binaries import find_binaries
from localkube.env import LocalKubeEnv
from localkube.supervisor import serve as serve_cluster


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localkube")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start clusters and keep them running until Ctrl-C")
    up.add_argument("-n", "--clusters", type=int, default=1)
    up.add_argument("--dir", type=Path, default=None, help="data directory (default: a temp dir)")
    up.add_argument("--prefix", default="local")
    sub.add_parser("binaries", help="build (once) and print where the binaries are")
    serve = sub.add_parser("serve", help="run one cluster described by DIR/spec.json")
    serve.add_argument("dir", type=Path)
    args = parser.parse_args(argv)

    if args.command == "serve":
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
        return serve_cluster(args.dir)

    if args.command == "binaries":
        binaries = find_binaries(build=True)
        print(binaries.apiserver.parent)  # noqa: T201
        return 0

    directory = args.dir or Path(tempfile.mkdtemp(prefix="keelson-localkube-"))
    env = LocalKubeEnv(directory, binaries=find_binaries(build=True))
    env.start()
    try:
        for index in range(1, args.clusters + 1):
            cluster = env.start_cluster(f"{args.prefix}-{index}")
            print(f"[{index}/{args.clusters}] {cluster.name}: kubeconfig {cluster.kubeconfig_path}")  # noqa: T201
        print("running; Ctrl-C stops every cluster")  # noqa: T201
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        env.stop()
    return 0


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    sys.exit(main())
