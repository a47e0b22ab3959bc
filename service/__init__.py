"""Flask service of partner-match."""
