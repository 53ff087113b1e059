"""Providers turn a cluster spec into a running, registered cluster (DESIGN.md "Providers")."""
