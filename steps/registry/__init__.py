"""Steps that write to the model registry: registration and promotion (always last)."""
