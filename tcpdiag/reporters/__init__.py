"""Reporters turn `CaptureReport`s into text for people (table, Markdown) or programs (JSON)."""
