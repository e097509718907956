"""The `credentials` spec's suite (openapi/credentials.requirements.yaml): a WSGI server that
maps a species to its credentials, checked over HTTP. It has no options of its own."""
