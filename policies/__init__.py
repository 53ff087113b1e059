"""Policy definitions, evaluation, enforcement, compliance history and reports."""
