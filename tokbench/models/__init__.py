"""Built-in adapters, one module per model family; registered lazily in ``tokbench.adapters``."""
