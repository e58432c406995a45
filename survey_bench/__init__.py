"""survey_bench: the model zoo of the surveyed papers, peer runners, reports and plots.

`survey_bench.zoo` holds the workload: PyTorch models that follow the papers the survey
discusses, scaled to sizes that a test (`tiny`) or a benchmark (`bench`) can run.
"""
