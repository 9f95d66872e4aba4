"""Registers the RAG operators with SAGE's plugin registry."""
