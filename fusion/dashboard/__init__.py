"""What the ops dashboard reads that no single domain holds: hourly series across jobs,
rate limits and inventory syncs, and the liveness of the hub's processes."""
