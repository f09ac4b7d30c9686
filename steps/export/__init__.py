"""Steps that turn the student into a deployable file."""
