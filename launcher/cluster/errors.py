"""Errors that are the user's to fix: they end a run with one line and no traceback."""

from launcher.cluster import exit_codes


class UserError(Exception):
    """Bad input: a spec, a flag, a model module or a directory the user gave us.

    The message is the whole report: it names the file or field and the offending value.
    """

    exit_code = exit_codes.BAD_INPUT


class SpecError(UserError):
    """A cluster spec that cannot be used as written."""

    def __init__(self, source: str, field: str, message: str):
        self.source = source
        self.field = field
        # A field may hold a key of the spec itself: shown so that the message stays one printable line.
        field = field if field.isprintable() else repr(field)[1:-1]
        where = f"{source}: {field}" if field else source
        super().__init__(f"{where}: {message}")


class CheckpointError(UserError):
    """Checkpoints that cannot be restored into this model; retrying will not help."""
