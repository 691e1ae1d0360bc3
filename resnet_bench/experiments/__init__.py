"""The ResNet paper's own experiments: the degradation of deep plain networks, and layer response statistics."""
