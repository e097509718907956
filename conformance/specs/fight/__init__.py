"""The `fight` spec's suite (openapi/fight.requirements.yaml): `fight.py`, Neo against the
Agents, run as a program and imported with the Agents' moves scripted. No options of its own."""
