"""EventBus adapters: in-process (memory) and NATS JetStream (nats)."""
