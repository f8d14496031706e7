"""Microsoft Entra ID, as far as the tutorial needs it: discovery, keys, and the token endpoint."""
