"""Background jobs: the queue, the worker and progress."""
