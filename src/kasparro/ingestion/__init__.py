"""Ingestion: the BaseIngestion loop, HTTP plumbing, the sources, identity and drift."""
