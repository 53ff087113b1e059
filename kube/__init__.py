"""Talking to member clusters: kubeconfigs, API clients, access checks, inventory."""
