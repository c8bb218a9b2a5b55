"""Alembic environment and versions for the store's schema (SPEC §4); run through kanmon.store.migrate."""
