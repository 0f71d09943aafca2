"""Exercises: the checker every chapter uses (`check_close`) and each chapter's named checks.

Introduced in: How to use this book. ``check.py`` holds the generic checker; a module per
chapter (``toolkit``, ``autoencoders``, ``vae``, ...) holds the checks that chapter's
exercises call, so a checker lives beside the chapter it serves, not in a model file.
"""

from .check import ExerciseError, check_close

__all__ = ["ExerciseError", "check_close"]
