"""The `audio` spec's suite (openapi/audio.requirements.yaml): a Flask audio manager, checked
through its page as a browser would, with real audio and non-audio samples (`samples/`). No
options of its own."""
