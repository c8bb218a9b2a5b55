"""kanmon.queue."""
