"""Trainers and the pure tensor mathematics they share; imports neither FastAPI nor the ORM."""
