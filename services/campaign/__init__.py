"""Campaign: react to score and tag changes with the content meant for each customer's layer."""
