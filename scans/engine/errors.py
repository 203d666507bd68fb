"""Errors the engine raises for a caller to show to a user.

Every message says what was wrong with which input; none needs a traceback.
"""


class AnalysisError(Exception):
    """The image cannot be analysed. The message is the reason a job fails with."""


class ImageFormatError(AnalysisError):
    """An archive, manifest or config is malformed or of an unknown type."""


class DigestMismatchError(AnalysisError):
    """A blob's content does not match the digest that names it."""


class HostileContentError(AnalysisError):
    """A layer tries to leave the image root or exceeds a resource limit."""


class RegistryError(AnalysisError):
    """The registry answered with an error, or could not be reached.

    `retryable` is true for failures that may pass on their own (timeouts,
    connection errors, 429 and 5xx answers after the client's own retries).
    """

    def __init__(self, message: str, *, retryable: bool = False, status: int | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.status = status


class ParseError(AnalysisError):
    """A package database or release file is malformed."""
