"""In-process harnesses shared by the tests and the benchmarks (neither imports the other's code): the stages'
broker-free driver (driver.py) and the frozen pre-streaming flow-log parser kept as an oracle
(legacy_flowlog.py)."""
