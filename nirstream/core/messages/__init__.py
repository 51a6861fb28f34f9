"""One module per topic, each the single definition of its messages (pydantic v2) and of their encoders.

``spectrum`` (nirstream.spectra; its JSON and binary encodings in ``codec``), ``prediction``
(nirstream.predictions), ``dead_letter`` (nirstream.deadletter), ``reference`` (nirstream.reference: lab values),
``labelled`` (nirstream.labelled: prediction + lab value + spectrum), ``model_event`` (nirstream.models);
``common``: the schema version, analyzer ids, the wavelength grid; ``limits``: the message size limit.
Where a service writes a message fast (orjson, spliced bytes), the encoder sits beside the model it must
match, and tests/test_messages.py validates its output with that model.
"""
