"""Runner layer: what turns a config into a finished run.

study (``Study``: the seeds x models x settings grid), cells (``Cell``, ``StudyResult``, rows),
seed_jobs (one seed's jobs), validation (a config checked against the real registries), catalog
(every registry; importing it registers every built-in member), run_folder (run folders and
status.json), run_analysis (analyses of a study's cached models), executor/ (local or Ray),
factors/ (the causal-factors study type). Imported by the entry points only.
"""
