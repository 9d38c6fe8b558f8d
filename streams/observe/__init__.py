"""What an operator sees of a running worker: metrics, health, logs, the task dump and the web endpoints."""
