"""Reference implementations: the model answers, one module per assignment, each a script."""
