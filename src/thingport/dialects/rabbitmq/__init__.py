"""RabbitMQ as the devices' broker: its HTTP auth backend's hooks and the AMQP side of the nodes."""
