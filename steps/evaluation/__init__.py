"""Steps that score trained models on the test split."""
