"""Exceptions of the model zoo: user errors with one clear message (the CLI prints ``error: ...``)."""


class ZooError(ValueError):
    """Base class for zoo user errors (unknown model, bad weights file, bad data arguments)."""


class UnknownModelError(ZooError, KeyError):
    """No model of that name in the registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
