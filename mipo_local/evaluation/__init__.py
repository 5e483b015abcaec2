"""The evaluation stage: did personalization work? Its settings, the held-out examples and the
person's own writing, the sampling and scoring (with their cache), the statistics and the report."""
