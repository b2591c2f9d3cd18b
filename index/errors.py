"""User-facing failures, importable without loading any model or database code."""


class QuestionError(ValueError):
    """The question cannot be asked as it is; the message says why, for the user."""


class NewsdeskError(RuntimeError):
    """A failure whose message is meant for the user, in one line."""


class StoreError(NewsdeskError):
    """The index cannot be used (server down, embedder mismatch, ...)."""


class EmbedderMismatch(StoreError):
    """The collection was built with another embedder."""


class EmbedderError(NewsdeskError):
    """The embedder cannot be set up (missing or altered model files)."""


class EmptyIndex(StoreError):
    """There is nothing to search yet; the message names the index and how to fill it."""
