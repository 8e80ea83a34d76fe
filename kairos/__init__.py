"""KAIRÓS Core: a low-latency multi-process crypto trading engine on shared-memory rings."""

__version__ = "0.1.0"
