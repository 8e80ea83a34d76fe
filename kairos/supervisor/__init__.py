"""Supervisor: spawns, watches and restarts the processes; serves the gRPC API."""
