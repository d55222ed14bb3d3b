"""Exception and warning types raised by musenet-hf."""


class MidiReadError(ValueError):
    """A MIDI file could not be read: nothing in it can be recovered.

    The message names the file (when known) and the reason, e.g.
    ``"song.mid: no MThd header chunk (starts with b'RIFF')"``. Damage that still leaves
    notes to recover is reported with :class:`MidiReadWarning` instead.

    Attributes:
        source: the file name or a description of the source (``"<bytes>"``).
        reason: why the file could not be read.
    """

    def __init__(self, source: str, reason: str):
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")

    def __reduce__(self):  # keep the two fields across process boundaries (worker processes)
        return (type(self), (self.source, self.reason))


class MidiReadWarning(UserWarning):
    """A MIDI file broke the standard but its notes were recovered (the message says how)."""


class CoverageWarning(UserWarning):
    """A request asks for what the model never trained on: a style whose token is untrained, or
    instruments its training pieces of that style never had (the message names what, and the nearest
    trained styles). ``musenet generate`` prints its own line instead; ``--strict`` refuses such a style."""
