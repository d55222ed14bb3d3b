"""MIDI files and their notes: :mod:`.midi_notes` (what a note is), :mod:`.midi_io` (read and write,
tolerant of damaged files through :mod:`._midi_repair`, fast through symusic in :mod:`.midi_symusic`)
and :mod:`.render` (WAV through FluidSynth, piano-roll PNG). Nothing here knows about tokens."""
