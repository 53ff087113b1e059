"""Cluster registry models (see the clusters issue)."""
