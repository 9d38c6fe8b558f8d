"""The pipeline's stages, one module each with a pure core and a thin agent shell; wired in streams/stages/topology.py.

poll (leader) → parse → enrich → sink → finalize; leader.py holds the metadata refresh and the heartbeat;
context.py what the stages of one process share; bucket.py and devices.py their COS and Kentik look-ups.
"""
