"""The finalize stage (finalize.py: batches, version-checked deletes, ledger) and the held ack of the messages
whose objects wait in a batch (held_ack.py)."""
