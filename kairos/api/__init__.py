"""The gRPC control API: servicer, auth, validation and conversions (served by the supervisor)."""
