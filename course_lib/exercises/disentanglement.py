"""Exercise checks of the chapter "β-VAE and disentanglement"."""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch.distributions import Normal

from ..metrics import mig_from_mi
from ..objectives_disentangle import aggregate_log_density
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


def _mws_tc(z: torch.Tensor, mu: torch.Tensor, scale: torch.Tensor, n: int, over: int = 1, joint_first: bool = False
            ) -> torch.Tensor:
    """The MWS total correlation, or one of its usual slips (``over=0``: logsumexp over the samples;
    ``joint_first``: the product of marginals taken as the joint)."""
    b = len(z)
    log_q = Normal(mu[None], scale[None]).log_prob(z[:, None])                      # (B, B, M)
    log_qz = torch.logsumexp(log_q.sum(2), dim=over) - math.log(n * b)
    log_prod = log_qz if joint_first else (torch.logsumexp(log_q, dim=over) - math.log(n * b)).sum(1)
    return (log_qz - log_prod).mean()


def check_mws_tc(your_tc: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, int], torch.Tensor]) -> None:
    """Check ``your_tc(z, mu, logvar, dataset_size)``: the minibatch-weighted-sampling estimate of the TC.

    Introduced in: β-VAE and disentanglement. Compared with `course_lib.objectives_disentangle.
    aggregate_log_density` on random batches (float64), naming the usual slips.
    """
    g = torch.Generator().manual_seed(7)
    answers, expected, slips = [], [], {}
    for b, m, n in ((16, 4, 1000), (32, 6, 737_280), (8, 3, 50)):
        mu = torch.randn(b, m, generator=g, dtype=torch.float64)
        logvar = torch.randn(b, m, generator=g, dtype=torch.float64) - 1
        z = mu + (0.5 * logvar).exp() * torch.randn(b, m, generator=g, dtype=torch.float64)
        answer = your_tc(z.clone(), mu.clone(), logvar.clone(), n)
        if answer is None:
            raise ExerciseError("your_tc returned None: did you forget to `return` it?")
        answer = torch.as_tensor(answer, dtype=torch.float64)
        if answer.dim() != 0:
            raise ExerciseError(f"your_tc should return one number, the mean over the batch; got shape "
                                f"{tuple(answer.shape)}")
        log_qz, log_prod = aggregate_log_density(z, mu, (0.5 * logvar).exp(), n, "mws")
        expected.append((log_qz - log_prod).mean())
        answers.append(answer)
        for hint, wrong in {
                "the log-weights are -log(N B), with N the data set size: you left N out": _mws_tc(z, mu, (0.5 * logvar).exp(), 1),
                "logvar is log sigma^2: the standard deviation is exp(logvar / 2)": _mws_tc(z, mu, logvar.exp(), n),
                "logsumexp runs over the posteriors q(.|x_k) (the second axis), not over the samples": _mws_tc(z, mu, (0.5 * logvar).exp(), n, over=0),
                "prod_j q(z_j): a logsumexp per dimension, then a sum over dimensions (yours equals log q(z))": _mws_tc(z, mu, (0.5 * logvar).exp(), n, joint_first=True),
        }.items():
            slips.setdefault(hint, []).append(wrong)
    check_close(torch.stack(answers), torch.stack(expected), "your TC estimate",
                mistakes={hint: torch.stack(values) for hint, values in slips.items()})
