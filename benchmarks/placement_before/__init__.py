"""Today's scheduler, as issue 20 found it (commit 3b992f7, fleet/placement/{scheduler,
scoring,cache,candidates}.py), frozen for the placement benchmark's side-by-side figures:
imports renamed to the layer layout, nothing else changed. Benchmark use only."""
