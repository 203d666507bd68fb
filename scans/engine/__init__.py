"""Vigil's image-analysis engine.

Nothing in this package imports Django: it runs in the CLI, in Celery workers
and in tests without a database (tests/engine/test_no_django.py keeps it so).
"""
