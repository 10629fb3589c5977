"""The on-disk record of every import, its states and transitions, in SQLite or PostgreSQL."""
