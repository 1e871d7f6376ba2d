"""Errors that carry a message meant for the user, not a traceback."""
from __future__ import annotations


class UserError(Exception):
    """Bad input or configuration from the user. Training writes it to the failure file."""


class HyperparameterError(UserError):
    pass


class DataError(UserError):
    """A training file or channel that cannot be used; the message names file, line, column."""


class RequestError(Exception):
    """A request the server refuses with a 4xx status and a JSON error body."""

    status = 400

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        if status is not None:
            self.status = status


class UnsupportedMediaType(RequestError):
    status = 415


class NotAcceptable(RequestError):
    status = 406


class PayloadTooLarge(RequestError):
    status = 413
