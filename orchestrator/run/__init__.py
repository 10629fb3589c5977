"""One run: the pipeline, the submitter, the run's shared state, and the wiring of real clients."""
