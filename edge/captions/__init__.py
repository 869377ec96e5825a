"""Subtitles from ``segment`` messages: which episodes become cues (:mod:`.cues`), and their
SRT/WebVTT text (:mod:`.formats`)."""
