"""NATS JetStream access: connection, topology, publishing, the pull-consume loop."""
