"""The Chirp–Reelix reference partnership: a population, its consents, and the demo.

Only the CLI imports this package (an import-linter contract says so).
"""

AUDIT_BY_DEFAULT_UP_TO = 100_000
"""The demo replays its releases with the auditor's evaluator by default up to this many people:
plain Python, about a minute and a half and 1.5 GB at 50,000 (``--audit`` asks for it beyond).
Here rather than in :mod:`accord.scenario.demo`, so that ``accord demo --help`` can say it
without loading the demo."""
