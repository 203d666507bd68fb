"""Pulling images from an OCI distribution registry: references, auth, the HTTP client and the pull."""
