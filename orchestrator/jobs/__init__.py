"""A job's life once a create call may have made it: refresh, reconcile with evidence, two-phase."""
