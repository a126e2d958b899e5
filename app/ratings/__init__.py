"""Ratings from pairwise judgements: Elo over responses, Bradley–Terry over policy versions."""
