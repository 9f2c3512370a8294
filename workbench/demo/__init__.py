"""Demo assets from real data (scikit-learn's breast cancer set) and the walkthrough driver."""
