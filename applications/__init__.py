"""Applications and their placement across clusters (DESIGN.md "Placement")."""
