"""Websocket plumbing shared by live views: coalescing and sequence numbers."""
