"""Errors a user can act on. The CLI prints their message and exits non-zero, without a traceback."""


class SuperposeError(Exception):
    """A problem with the user's input or environment, with a message that says how to fix it."""


class ConfigError(SuperposeError):
    """A config or task file is malformed: the message names the file and the field."""


class ModelNotAvailable(SuperposeError):
    """A model name is unknown, or a known model is not installed."""


class PromptTooLong(SuperposeError):
    """A prompt plus its longest answer does not fit in the model's context window."""


def brief(value: object, limit: int = 40) -> str:
    """User input shown in a message: a short string quoted (line breaks and control characters escaped),
    anything longer or of another kind by its kind and size -- never the raw input itself."""
    if isinstance(value, str):
        if len(value) <= limit:
            return "'" + "".join(c if c.isprintable() and not 0xD800 <= ord(c) <= 0xDFFF else repr(c)[1:-1]
                                 for c in value) + "'"
        return f"a string of {len(value):,} characters"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"a number of about {int(value.bit_length() * 0.30103) + 1:,} digits"  # str() refuses > 4300 digits
    if isinstance(value, (bool, int, float)) or value is None:
        text = str(value)
        return text if len(text) <= limit else f"a number of {len(text):,} digits"
    size = f" of {len(value):,} item{'s' * (len(value) != 1)}" if hasattr(value, "__len__") else ""
    return f"a {type(value).__name__}{size}"


def missing_package(package: str, purpose: str) -> SuperposeError:
    """The one-line error for an optional package that is not installed: what needs it, how to install it."""
    return SuperposeError(f"{purpose} needs the Python package '{package}', which is not installed: "
                          f"pip install '{package}'")
