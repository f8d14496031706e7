"""Microsoft Graph: the slice the Azure CLI reads to name and resolve principals."""
