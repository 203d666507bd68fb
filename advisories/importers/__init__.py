"""Feed importers, listed explicitly in IMPORTERS (no import-time registration).

Everything in this package is Django-free: parsers are plain functions over
documents, tested without a database.
"""
