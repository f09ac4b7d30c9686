"""Lineage of a registered model: the facts recorded at registration (``record``) and their audit (``audit``)."""

from fourds.lineage.audit import LineageAudit, format_audit, trace_lineage
from fourds.lineage.record import LineageRecord, code_commit

__all__ = ["LineageAudit", "LineageRecord", "code_commit", "format_audit", "trace_lineage"]
