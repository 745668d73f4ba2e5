"""A 12-factor calculator agent: a BAML prompt chooses the next step, owned code runs it."""
