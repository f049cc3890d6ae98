"""The site's one cumulative disclosure ledger: what was released, to whom, over which
cohort, at what epsilon; and the checks that refuse differencing, repeats and overspending."""
