"""A slice of Azure Resource Manager: hosts and their identities, user-assigned identities,
role definitions and assignments, and the Communication Services resource."""
