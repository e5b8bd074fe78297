"""The gen track: class-conditional generators scored by gFID, Inception Score and precision/recall."""
