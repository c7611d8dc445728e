"""The audit of a user's own model (``study: audit``, ``overconf audit CONFIG``, ``overconf.audit``):
the user's factory, trained target, recipe (or training function), data and normalisation; overconf
trains the shadow and reference models like the target, runs every configured attack on every
non-member source and checks that the reference models mimic the target.

``user_code`` (``module:function`` imports, code digests, the target's weights), ``setup`` (the
audit resolved: data layout, factories, the internal study config), ``study`` (:class:`AuditStudy`
on the study machinery), ``mimicry`` (the mimicry check).
"""
from overconf.runner.audit.setup import AuditPlan, prepare_audit
from overconf.runner.audit.study import AuditJobs, AuditStudy, run_audit

__all__ = ["AuditJobs", "AuditPlan", "AuditStudy", "prepare_audit", "run_audit"]
