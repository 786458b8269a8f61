"""The one exception type for a user's mistake: the CLI prints it without a traceback."""


class FactoryError(Exception):
    """Bad input or setup that the user can fix; the message says what and how."""
