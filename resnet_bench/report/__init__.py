"""The Pareto report of a study: ranks, hypervolume, intervals, tables, plots and files.

Works on the plain `StudyTrials` that `resnet_bench.search.trials` loads; imports neither Optuna nor torch
(the published reference points alone ask the profiler for their GFLOPs).
"""
