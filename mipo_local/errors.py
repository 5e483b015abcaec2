"""The one exception type the command line turns into a one-line message and a non-zero exit."""


class MipoError(Exception):
    """A problem the user can act on. The message says what was wrong and what to do."""
