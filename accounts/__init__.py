"""Teams, membership and roles (viewer/operator/admin); login and logout."""
