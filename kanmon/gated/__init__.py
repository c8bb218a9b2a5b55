"""The `gated` entrypoint: click CLI, configuration loading, daemon wiring."""
