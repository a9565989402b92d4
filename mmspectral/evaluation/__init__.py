"""Metrics (BaseMetric subclasses) register here as they are added."""
