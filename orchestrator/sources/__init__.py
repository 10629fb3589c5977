"""Object listers, one module per kind of store, behind :class:`orchestrator.sources.base.Source`."""
