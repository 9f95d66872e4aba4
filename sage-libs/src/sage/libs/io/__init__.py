"""SAGE IO: sources and sinks."""
