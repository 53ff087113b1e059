"""Cost metering: prices, OpenCost-style allocation per cluster and hour, rollups, budgets."""
