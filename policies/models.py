"""Policy models (see the policies issue)."""
