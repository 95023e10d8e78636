"""The LLM traffic path: request parsing and estimation, ext_authz Check, access-log settlement."""
