"""Alembic migrations of the store; run them with :func:`accord.store.migrate.upgrade`."""
