"""Settings: the option table, the environment, the config file, the sources and the Kafka profile."""
