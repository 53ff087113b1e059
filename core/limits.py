"""Process limits a fleet manager needs.

Each worker keeps a keep-alive connection to every member cluster it has talked to (one
pool per API server endpoint), and the web process holds one socket per websocket and
agent connection: at 10,000 clusters that is 10,000 open files per worker, past the soft
limit of 1,024 that systemd and most shells give a process. The hard limit is usually far
higher (524,288 under systemd), so Keelson's processes raise their soft limit to it at
start, as Go programs do, instead of failing with "Too many open files" mid-collection.
"""

from __future__ import annotations

import logging
import resource

logger = logging.getLogger(__name__)
# Raised to when there is no hard limit; below the second, a worker tracking a few thousand
# clusters runs out of descriptors, which is worth a warning.
WANTED_OPEN_FILES = 65536
WARN_BELOW = 4096


def raise_open_files_limit() -> int:
    """Raise the soft limit on open files to the hard limit; returns the soft limit now in
    force. Never lowers it, and says so once when the hard limit is below what a large
    fleet needs."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, WANTED_OPEN_FILES)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as error:  # a container that forbids it
            logger.warning("could not raise the open files limit from %s: %s", soft, error)
    if soft != resource.RLIM_INFINITY and soft < WARN_BELOW:
        logger.warning(
            "open files limited to %s: each worker keeps a connection per member cluster; "
            "raise LimitNOFILE (or ulimit -n) to at least %s for large fleets",
            soft,
            WANTED_OPEN_FILES,
        )
    return soft
