"""The model registry (students per domain, teachers), lineage tags and the promotion policy.

See docs/REGISTRY.md for the registry layout, tags, aliases and promotion gates.
"""

from fourds.registry.aliases import CHALLENGER, CHAMPION, alias_history, alias_version, move_alias, rollback
from fourds.registry.champion import score_champion
from fourds.registry.errors import RegistryError
from fourds.registry.versions import (
    LoadedStudent,
    LoadedTeacher,
    RegisteredModelVersion,
    import_teacher,
    load_onnx_classifier,
    load_student,
    load_teacher,
    register_student,
    register_teacher,
    resolve_model_version,
    student_model_name,
)
from fourds.registry.promotion import (
    ChampionScore,
    PromotionDecision,
    champion_metrics,
    decide_promotion,
    default_min_accuracy,
    gate_metrics,
    promote_if_better,
)
from fourds.registry.status import DomainStatus, domain_status, render_status_table

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "ChampionScore",
    "DomainStatus",
    "LoadedStudent",
    "LoadedTeacher",
    "PromotionDecision",
    "RegisteredModelVersion",
    "RegistryError",
    "alias_history",
    "alias_version",
    "champion_metrics",
    "decide_promotion",
    "default_min_accuracy",
    "domain_status",
    "gate_metrics",
    "import_teacher",
    "load_onnx_classifier",
    "load_student",
    "load_teacher",
    "move_alias",
    "promote_if_better",
    "register_student",
    "register_teacher",
    "render_status_table",
    "resolve_model_version",
    "rollback",
    "score_champion",
    "student_model_name",
]
