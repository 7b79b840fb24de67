"""``pare compare``: read MLflow runs of one experiment and write a side-by-side report.

:mod:`pipelines.compare.runs` reads the runs (params, final and best metric values, metric
histories) and logs a report back as a run; :mod:`pipelines.compare.report` writes the
Markdown, CSV and plots.
"""
