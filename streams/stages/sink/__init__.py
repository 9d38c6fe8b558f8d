"""The sink stages (Kentik HTTP and IPFIX) and what only they use: delivery, device look-ups, the per-source guard."""
