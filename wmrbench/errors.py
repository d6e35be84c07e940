"""The one exception type for bad user input.

Library code raises WmrbenchError with a message that fits on one line and says what to do;
the CLI prints it as ``Error: <message>`` and exits with code 2, having written nothing.
"""


class WmrbenchError(Exception):
    """Bad input: unknown name, value out of range, missing or corrupt file."""
