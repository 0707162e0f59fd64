"""Errors a user can act on. The CLI prints their message and exits non-zero, without a traceback."""


class SuperposeError(Exception):
    """A problem with the user's input or environment, with a message that says how to fix it."""


class ConfigError(SuperposeError):
    """A config or task file is malformed: the message names the file and the field."""


class ModelNotAvailable(SuperposeError):
    """A model name is unknown, or a known model is not installed."""


class PromptTooLong(SuperposeError):
    """A prompt plus its longest answer does not fit in the model's context window."""
