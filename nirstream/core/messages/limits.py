"""The size limit of one message, defined once: the default of the ``max_message_bytes`` setting (worker, file
bridge) and of the spectrum decoder. Kafka's own default ``message.max.bytes`` is about 1 MB too."""

MAX_MESSAGE_BYTES = 1_000_000
