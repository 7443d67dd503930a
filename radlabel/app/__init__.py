"""Headless application logic: session, tool dispatch, undo, proposal review, autosave. No Qt."""
