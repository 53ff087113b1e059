"""Long-running work as tracked rows (state, progress, log) streamed to the browser."""
