"""The commands: `blueflow` CLI, worker start, check, status, replay and dead letters."""
