"""The fault suite: "nothing lost, nothing deleted early, bad input quarantined", proved on the local stack.

One module per scenario family (processes.py: kill -9, SIGTERM, rebalance; outages.py: Kafka, S3Proxy,
IAM/VPC API; kentik.py: a failing, misbehaving or stalling Kentik; hostile.py: hostile inputs, COS
refusing deletes, huge objects; secrets.py; sources.py: two sources; embedded.py: the embedded Kafka), the run
they act on (run.py) and how their faults meet work in flight (phase.py), the verdict (verdict.py), the runner
(runner.py) and the CLI (cli.py, `blueflow-dev faults`).
"""
