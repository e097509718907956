"""The `uptime` spec's suite (openapi/uptime.requirements.yaml): seed 002's site monitor that
alerts a site's contact when it goes down, run once through a scripted timeline in the box
(conformance/_box) with alert services of our own (conformance/_alerts, and the userbot spec's
Telegram for a user's account); checks.py runs it.

Rules: import nothing heavy here (every command reads every spec's options). The program's
command takes the CSV and N through its placeholders (`{csv}`, `{interval}`) or, without any,
gets them appended in that order.
"""
