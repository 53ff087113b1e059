"""Presentation helpers shared by every page: timestamps, money, navigation."""
