"""Executors: the documented runner entry points live in `statek.executors.utils`."""
