"""Machine-learning code that imports neither FastAPI nor the ORM: it runs in a job, a notebook
or under ``accelerate launch`` alike."""
