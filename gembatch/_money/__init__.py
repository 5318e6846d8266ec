"""Money: the price table, token estimates, the plan of a run, the cost report."""
