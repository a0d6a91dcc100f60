"""One consumer per broker kind: Kafka (aiokafka), RabbitMQ (aio-pika), NATS JetStream (nats-py)."""
