"""Managed-identity endpoints of the simulated hosts (IMDS style and App Service style)."""
