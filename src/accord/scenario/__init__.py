"""The Chirp–Reelix reference partnership: a population, its consents, and the demo.

Only the CLI imports this package (an import-linter contract says so).
"""
