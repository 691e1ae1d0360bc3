"""The search: study files, the search space, Optuna studies and their storage. Optuna is imported here only."""
