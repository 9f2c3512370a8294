"""Attestation: parse (formats), check (verify), judge (appraise) and obtain (tee) evidence."""
