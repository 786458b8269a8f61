"""The exception types for a user's mistake: the CLI prints them without a traceback."""

from filters.base import FilterError


class FactoryError(Exception):
    """Bad input or setup that the user can fix; the message says what and how."""


USER_ERRORS = (FactoryError, FilterError)  # filters/ has its own, as it imports nothing from factory/
