"""The I/O clients: COS (list, get, version-checked delete), the VPC API, Kentik HTTP, IPFIX export, Kafka admin."""
