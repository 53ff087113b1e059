"""Evaluating policies on clusters and storing the results (full history).

For one cluster: find the enabled policies that target it (`targeting`), drop those
already judged at the same policy generation and inventory stamp (unless forced), list
every kind the rest need once through discovery (`reading`), judge each policy over that
snapshot (`outcomes`), and store one result per policy in one transaction (`store`). A
cluster that cannot be read gets an `error` result per policy saying why; one object a
rule cannot judge is recorded against that object. One evaluation runs per cluster at a
time (`locks`).

A sweep batch (`run`) does this for its clusters together: the teams' policies, the
inventory stamps and the newest results are read once for the batch, the clusters are
read in threads (network, TLS and decoding; as many reads in flight as keep the judging
busy, up to `KEELSON_POLICY_READ_THREADS`: `kube.reads`) while the calling thread judges
each read as it arrives, and the results are stored with COPY every FLUSH_ROWS. `sweep`
cuts the fleet into batches and answers the "evaluate" button.

The inventory stamp is the time of the cluster's last inventory collection: a new
collection may have seen anything change, so it re-opens every policy for that cluster,
while a policy edit (new generation) re-opens only that policy.
"""

from policies.services.evaluation.outcomes import EVALUATION_COLUMNS, MAX_LISTED, Outcome
from policies.services.evaluation.reading import cluster_reader, read_cluster
from policies.services.evaluation.run import cluster_evaluate, clusters_evaluate
from policies.services.evaluation.sweep import (
    BATCH_SIZE,
    EVALUATE_INTERVAL,
    EVALUATE_TASK,
    Evaluated,
    policies_evaluate_fanout,
    policy_evaluate,
    sweep_batches,
)
from policies.services.evaluation.targeting import policy_clusters

__all__ = [
    "BATCH_SIZE",
    "EVALUATE_INTERVAL",
    "EVALUATE_TASK",
    "EVALUATION_COLUMNS",
    "MAX_LISTED",
    "Evaluated",
    "Outcome",
    "cluster_evaluate",
    "cluster_reader",
    "clusters_evaluate",
    "policies_evaluate_fanout",
    "policy_clusters",
    "policy_evaluate",
    "read_cluster",
    "sweep_batches",
]
