"""Small text operators, shipped as an example of a third-party SAGE plugin."""

from sage_example_textops.operators import MatchFilter, NormalizeWhitespace

__all__ = ["MatchFilter", "NormalizeWhitespace"]
