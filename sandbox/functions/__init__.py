"""Azure Functions for the sandbox's Function app sites: each site serves the kit's real app
(``apps/func-tutorial``) from a worker process that has only the site's environment."""
