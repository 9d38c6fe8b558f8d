"""IBM Cloud VPC flow-log objects: gunzip, scan, decode and check a COS object; encode its flows as the flows topic's
messages."""
