"""What the workers remember in Kafka: outcomes and progress, topic followers, VPC metadata and its IP index,
rewinds."""
