"""The pull-mode agent: runs next to a cluster, calls the hub (`python -m agent`)."""
