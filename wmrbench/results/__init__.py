"""Result files and the statistics on them: records, points, metrics, bootstrap intervals,
comparisons and groups of training runs. Above the foundation, below everything that runs a model.
"""
