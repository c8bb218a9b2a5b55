"""kanmon.gateway."""
