"""Training: Lightning module, optimisers and schedules, feature cache, the ``fit`` entry point."""
