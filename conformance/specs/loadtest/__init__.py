"""The `loadtest` spec's suite (openapi/loadtest.requirements.yaml): seed 002's load tester of one
URL at a fixed rate, judged from the side of the target the suite plays; checks.py runs it.

Rules: import nothing heavy here (every command reads every spec's options). The tester's
command takes the parameters through its placeholders (`{url}`, `{rps}`, `{test_time}`,
`{wait_timeout}`, `{config}`) or, without any, appended in the seed's order.
"""
