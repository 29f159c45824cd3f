"""HTTP routes of the jobs service, one module per resource."""
