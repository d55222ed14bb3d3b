"""What a trained model is worth (``musenet evaluate``): :mod:`.measurements` (bits per second, composers,
steering, length) and :mod:`.musical_statistics` (statistics of pieces, the note-closing probe)."""
