"""Exercises: the checker every chapter uses (`check_close`) and each chapter's named checks.

Introduced in: How to use this book. ``check.py`` holds the generic checker (``hints.py`` its
diagnoses); a module per chapter (``toolkit``, ``autoencoders``, ``vae``, ...) holds the
checks that chapter's exercises call, so a checker lives beside the chapter it serves, not in
a model file. ``python -m course_lib.student`` exports student notebooks and
``python -m course_lib.grade`` grades them.
"""

from .check import Exercise, ExerciseError, check_close, exercise_header

__all__ = ["Exercise", "ExerciseError", "check_close", "exercise_header"]
