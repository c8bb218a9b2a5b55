"""kanmon.container."""
