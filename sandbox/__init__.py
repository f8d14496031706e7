"""A local, faithful stand-in for the Azure endpoints the tutorial talks to.

It runs as its own process (``python -m sandbox start``) so that the real, unmodified Azure SDKs
reach it over HTTPS exactly as they reach the cloud. Nothing here is imported by the notebooks.
"""
