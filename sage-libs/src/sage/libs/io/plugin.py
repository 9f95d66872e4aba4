"""Registers the IO sources and sinks with SAGE's plugin registry."""
