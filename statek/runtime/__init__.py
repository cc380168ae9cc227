"""The worker: in-memory scheduling state, queue draining, the loop, agentic loops."""
