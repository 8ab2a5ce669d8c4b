"""Reliability and security suite: crashes, outages, flapping, drift, malformed files, fuzzing, load."""
