"""Pydantic models: one module per source, the unified record, and the API's response models."""
