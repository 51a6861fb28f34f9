"""Development and demonstration tools, apart from the service: the demo, the analyzer simulator, the
topic console view, the embedded broker, helpers that start workers and trainings as child processes.
The worker (``stream``) and the trainer (``trainer``) never import this package."""
