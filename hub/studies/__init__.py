"""Study lifecycle: submission, approval, dispatch per site, rounds and results."""
