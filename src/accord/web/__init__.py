"""Templates and static files for the pages people see: consent screens, sign-in, errors."""
