"""Accord's own store: parties, agreements, reviews, consents and the ledger, in SQL.

engine.py        engines from a URL (SQLite with its pragmas, or PostgreSQL)
types.py         instants stored as UTC that compare correctly in SQL on both backends
tables.py        the tables, declared on ``engine.Base``
migrate.py       Alembic to head without an ini file; ``open_store(url)``
migrations/      the Alembic environment and revisions (``0001_core``, ``0002_ledger``, ...)
repositories.py  one repository per kind of record (people.py, registry.py, consents.py)
filter_sql.py    a ``PersonFilter`` as one SELECT: who may be released, and who not and why
driver.py        a large query's rows straight from the driver's cursor, parameters converted
"""
