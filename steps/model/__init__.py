"""Steps that resolve models (the frozen teacher) into files of the run folder."""
