"""Domain of partner-match: organisations, eligibility, complementarity, fairness, ranking."""
