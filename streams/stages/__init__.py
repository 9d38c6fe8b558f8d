"""The pipeline's stages, one module each with a pure core and a thin agent shell; wired in topology.py.

poll (leader) → parse → enrich → sink/ (Kentik, or IPFIX) → finalize/ (deletes); leader.py holds the metadata
refresh and the heartbeat; context.py what the stages of one process share; bucket.py the COS look-ups of parse
and finalize; retry.py the one backoff policy; runtime.py the clients and health of one worker process.
"""
