"""Steps that bring a domain into the workspace and check it."""
