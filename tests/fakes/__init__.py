"""Real servers on 127.0.0.1 that behave like the services the orchestrator talks to."""
