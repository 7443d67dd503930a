"""Readers and writers of image volumes; :func:`radlabel.core.io.loader.open_path` is the entry point."""
