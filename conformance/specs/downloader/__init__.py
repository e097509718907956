"""The `downloader` spec's suite (openapi/downloader.requirements.yaml): seed 002's image
downloader with a bound on downloads at once, judged in the box's local internet
(conformance/_box); checks.py runs it.

Rules: import nothing heavy here (every command reads every spec's options). The program's
command takes the CSV, the folder and N through its placeholders (`{csv}`, `{folder}`,
`{limit}`) or, without any, appended in that order.
"""
