"""Steps that open the run: its folder and its MLflow run."""
