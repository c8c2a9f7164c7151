"""The one exception type the codec raises: callers catch exactly this."""


class CodecError(ValueError):
    """Bytes that do not decode as the record kind that was asked for."""
