"""ZenML pipelines: they only wire steps (``steps/``) together; ``launch`` runs them.

* ``train_teacher``: source domain -> teacher registered in MLflow (``fourds-teacher``).
* ``distill``: target domain + frozen teacher -> student, evaluated, exported to ONNX,
  registered and promoted if it beats the domain's champion.
"""
