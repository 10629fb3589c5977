"""Pure decisions: one listed object and its history -> one action; which objects share a job."""
