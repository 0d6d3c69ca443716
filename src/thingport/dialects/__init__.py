"""Wire formats. A dialect parses, authenticates, calls one service and maps the result back."""
