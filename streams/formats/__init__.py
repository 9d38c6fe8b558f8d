"""Pure data formats, no I/O: flow-log decoding, the Kafka records and their Avro, the packed columns, translation and
the Kentik/IPFIX encoders."""
