"""Azure Communication Services data plane: the Identity and SMS APIs."""
