"""The hackathon42's rule for what not submitting scores: a default score of 0.8, and 0.5 on its
two hard exercises (vehicle and animal, id 888; humans, id 999)."""

DEFAULT_SCORE = 0.8
HARD_DEFAULT_SCORE = 0.5
HARD_EXERCISES = {"vehicle_animal": 888, "humans": 999}  # dataset name: exercise id


def default_score(exercise: str | int | None, metadata: dict | None = None) -> float:
    """What not submitting scores on `exercise`, named by its dataset or its exercise id
    (None: an exercise not named, `DEFAULT_SCORE`); a dataset's `metadata` with a default_score
    wins."""
    if metadata and "default_score" in metadata:
        return float(metadata["default_score"])
    if isinstance(exercise, str) and exercise.isdigit():
        exercise = int(exercise)
    hard = exercise in HARD_EXERCISES or exercise in HARD_EXERCISES.values()
    return HARD_DEFAULT_SCORE if hard else DEFAULT_SCORE
