"""The coordinators' GraphiQL explorer, self-hosted so it works offline and under a strict CSP."""
