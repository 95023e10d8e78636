"""The `keeptrusts-authz` command line."""
