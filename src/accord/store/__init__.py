"""Accord's own store: parties, agreements, reviews, consents and the ledger, in SQL."""
