"""Synthetic inputs of the local stack: a VPC world (world.py), flow records consistent with it (traffic.py),
IBM's object layout (layout.py), the mix of good, empty and bad objects (generator.py, badinputs.py) and their
upload (writer.py, `blueflow-dev generate`)."""
