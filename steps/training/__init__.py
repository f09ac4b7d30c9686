"""Steps that train: the teacher on a source domain, the student by distillation."""
