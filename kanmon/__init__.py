"""kanmon: a polling container orchestrator for chat agents."""

__version__ = "0.1.0"
