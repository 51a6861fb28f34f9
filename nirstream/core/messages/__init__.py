"""One module per topic, each the single definition of its messages (pydantic v2).

``spectrum`` (nirstream.spectra), ``prediction`` (nirstream.predictions), ``dead_letter``
(nirstream.deadletter), ``reference`` (nirstream.reference: lab values), ``labelled``
(nirstream.labelled: prediction + lab value + spectrum), ``model_event`` (nirstream.models);
``common``: the schema version, analyzer ids, the wavelength grid.
"""
