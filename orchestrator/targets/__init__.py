"""Import APIs, one module each, behind :class:`orchestrator.targets.base.Target`."""
