"""The Chirp–Reelix reference partnership: a population, its consents, and the demo.

Only the CLI imports this package (an import-linter contract says so).
"""

AUDIT_BY_DEFAULT_UP_TO = 100_000
"""The demo replays its releases with the auditor's evaluator by default up to this many people:
plain Python, about a minute and a half and 1.5 GB at 50,000 (``--audit`` asks for it beyond).
Here rather than in :mod:`accord.scenario.demo`, so that ``accord demo --help`` can say it
without loading the demo."""

ADS_BY_DEFAULT_FROM = 1_000
"""The demo runs Chirp's ad season by default from this many people: with fewer, the smallest
campaigns' daily budgets would not pay for one click (``--ads`` asks for it anyway, and says
which)."""
ADS_BY_DEFAULT_UP_TO = 20_000
"""... and up to this many: its 21 days take about half a second each at 10,000 people, and
grow with the people (``--ads`` asks for it beyond)."""
