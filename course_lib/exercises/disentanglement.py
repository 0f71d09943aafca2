"""Exercise checks of the chapter "β-VAE and disentanglement"."""

from __future__ import annotations

from typing import Callable

import torch

from ..metrics import mig_from_mi
from .check import ExerciseError, check_close


def check_mig(your_mig: Callable[[torch.Tensor, torch.Tensor], float]) -> None:
    """Check ``your_mig(mi, entropies)``: MI matrix (M, F) and H(v_k) (F,) -> MIG; names the usual slips.

    Introduced in: β-VAE and disentanglement.
    """
    answers, expected = [], []
    for mi in (torch.tensor([[0.69, 0.0], [0.21, 0.21], [0.0, 0.0]]),
               torch.tensor([[1.2, 0.1, 0.4], [0.3, 0.9, 0.5], [0.2, 0.8, 0.1], [1.0, 0.0, 0.3]])):
        h = mi.max(0).values + 0.3                                        # entropies above every MI
        answer, right = your_mig(mi.clone(), h.clone()), mig_from_mi(mi, h)[0]
        if answer is None:
            raise ExerciseError("your_mig returned None: did you forget to `return` it?")
        top = mi.sort(0, descending=True).values                          # each factor's column sorted
        slips = {"divide each gap by its factor's entropy H(v_k)": (top[0] - top[1]).mean(),
                 "the gap is to the second-largest MI, not the smallest": ((top[0] - top[-1]) / h).mean(),
                 "average the gaps over factors (you summed them)": ((top[0] - top[1]) / h).sum()}
        for hint, wrong in slips.items():
            if abs(float(answer) - float(wrong)) < 1e-6 < abs(float(wrong) - right):
                raise ExerciseError(f"your MIG is not right yet: {hint}")
        answers.append(float(answer)), expected.append(right)
    check_close(torch.tensor(answers), torch.tensor(expected), "your MIG")
