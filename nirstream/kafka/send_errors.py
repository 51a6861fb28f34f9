"""Kafka send errors that are about the record itself: the same record fails the same way however often
it is retried, so a sender gives up on that record (dead letter, rejected file) instead of retrying."""

from aiokafka.errors import CorruptRecordException, MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError

PERMANENT_SEND_ERRORS = (MessageSizeTooLargeError, RecordTooLargeError, RecordListTooLargeError, CorruptRecordException)
