"""One cluster at a time: registry, credentials, connectivity, providers, inventory, health."""
