"""Cluster business logic, called alike by pages, the API, tasks and commands."""
