"""The analyzer file bridge (``nirstream ingest``): spectrum files an analyzer writes to a folder, published
once each, in order, to the spectra topic. Parts: ``scanner`` (which files are complete, in what order),
``state`` (what the broker has acknowledged, on disk), ``publisher`` (send, wait for acks, retry),
``bridge`` (read, encode, publish or reject, move)."""

# Here, not in ``bridge``, so that the CLI's help can name it without importing the bridge (numpy, pydantic).
ONCE_ATTEMPTS = 10  # with --once: polls a file that cannot be read (or a listing that fails) is tried before giving up
ONCE_SEND_ATTEMPTS = 5  # with --once: sends to an unreachable broker (0.5 + 1 + 2 + 4 s apart) before giving up
