"""The sandbox's own API (not Azure's): reset, request log, personas, and later inbox and faults."""
