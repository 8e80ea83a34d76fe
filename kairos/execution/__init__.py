"""Execution adapters: the gate <-> executor contract (base), venue REST adapters, filters."""
