"""Templates and static files for the pages people see: the start page, consent screens,
sign-in, a person's apps, errors."""
