"""Model families, one file each (introduced in: The course toolkit).

Each file starts with an architecture-only config dataclass and holds networks and, where
they belong to that family alone, its objectives. A model file never imports the trainer,
checkpoints, data or the environment (a repository test enforces it): how a model is
trained and which ones ship is `course_lib.runs`.
"""
