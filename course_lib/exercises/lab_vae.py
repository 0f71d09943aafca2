"""Exercise checks of the lab "Build your own VAE": each step against course_lib on fixed seeds.

Introduced in: Lab: build your own VAE. Every check builds the same small VAE and the same
binary images and noise, computes the reference with `course_lib` (distributions, objectives,
`Trainer`), and names the typical slips (``mistakes=``) and wrong reductions (``sizes=``).
"""

from __future__ import annotations

import copy
import math

import torch
from torch.distributions import Normal, kl_divergence

from ..models.vae import VAE, VAEConfig
from ..nets import MNIST_SHAPE, pixels
from ..objectives import iwae_bound
from ..trainer import Trainer
from .check import ExerciseError, check_close

B, M, K = 8, 4, 6   # images, latent dimensions, importance samples of the checks


def _setup(seed: int = 0) -> tuple[VAE, torch.Tensor]:
    """A small VAE (hidden 32, M = 4) with fixed weights, and B binary images."""
    torch.manual_seed(seed)
    model = VAE(VAEConfig(latent=M, hidden=32))
    gen = torch.Generator().manual_seed(seed + 1)
    x = torch.bernoulli(torch.rand(B, *MNIST_SHAPE, generator=gen), generator=gen)
    return model, x


def _noise(*shape: int, seed: int = 3) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def check_reparameterise(fn) -> None:
    """``fn(mu, logvar, eps)`` returns z = mu + sigma * eps with sigma = exp(logvar / 2).

    Introduced in: Lab: build your own VAE.
    """
    mu, logvar, eps = _noise(B, M, seed=0), _noise(B, M, seed=1), _noise(B, M, seed=2)
    check_close(fn(mu, logvar, eps), mu + torch.exp(0.5 * logvar) * eps, "z", mistakes={
        "logvar treated as log sigma (or the variance used as the standard deviation): "
        "sigma = exp(logvar / 2), not exp(logvar)": mu + logvar.exp() * eps,
        "logvar multiplies the noise directly; sigma = exp(logvar / 2)": mu + logvar * eps,
        "mu was left out: z = mu + sigma * eps": torch.exp(0.5 * logvar) * eps,
        "sigma = exp(-logvar / 2): the sign inside the exponential is flipped": mu + torch.exp(-0.5 * logvar) * eps})


def _elbo_reference(model: VAE, x: torch.Tensor, eps: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        q = model.encode(x)
        z = q.mean + q.stddev * eps                                     # the draw the student makes
        distortion = -model.decode(z).log_prob(x)                       # (B,)
        rate = kl_divergence(q, model.prior())                          # (B,)
    return {"distortion": distortion, "rate": rate, "z": z, "q": q}


def check_elbo(fn) -> None:
    """``fn(model, x, eps)`` returns a dict with ``loss``, ``rate`` and ``distortion``: batch means of
    per-image sums, for z = mu + sigma * eps (introduced in: Lab: build your own VAE).
    """
    model, x = _setup()
    eps = _noise(B, M)
    ref = _elbo_reference(model, x, eps)
    out = fn(model, x, eps)
    if not isinstance(out, dict) or not {"loss", "rate", "distortion"} <= set(out):
        raise ExerciseError("return a dict with the keys 'loss', 'rate' and 'distortion', e.g. "
                            "{'loss': distortion + rate, 'rate': rate, 'distortion': distortion}")
    mu, sigma = ref["q"].mean, ref["q"].stddev
    var = sigma ** 2
    with torch.no_grad():
        wrong_var = torch.exp(2 * var.log())                            # sigma^2 = exp(2 logvar)
        logits = model.decoder(ref["z"])
        at_mean = -model.decode(mu).log_prob(x)
        per_pixel = torch.nn.functional.binary_cross_entropy_with_logits(logits, x)
        probs_as_logits = torch.nn.functional.binary_cross_entropy_with_logits(
            torch.sigmoid(logits), x, reduction="none").flatten(1).sum(1)
    check_close(out["rate"], ref["rate"].mean(), "the rate", sizes={"batch": B, "latent dims": M}, mistakes={
        "logvar treated as log sigma: sigma^2 = exp(2 logvar) instead of exp(logvar)":
            (0.5 * (mu ** 2 + wrong_var - wrong_var.log() - 1)).sum(-1).mean(),
        "KL in the wrong direction, KL(p(z) || q(z|x)) instead of KL(q(z|x) || p(z))":
            kl_divergence(Normal(torch.zeros_like(mu), 1.0), Normal(mu, sigma)).sum(-1).mean(),
        "the - log sigma^2 term has the wrong sign": (0.5 * (mu ** 2 + var + var.log() - 1)).sum(-1).mean(),
        "the - 1 is missing from the KL": (0.5 * (mu ** 2 + var - var.log())).sum(-1).mean()})
    check_close(out["distortion"], ref["distortion"].mean(), "the distortion",
                sizes={"batch": B, "pixels": pixels(MNIST_SHAPE)}, mistakes={
        "the decoder was evaluated at the posterior mean mu instead of the sample z": at_mean.mean(),
        "binary cross-entropy averaged over the pixels (F.binary_cross_entropy's default) instead of summed": per_pixel,
        "sigmoid applied twice: the decoder outputs logits, pass them to the *_with_logits loss as they are":
            probs_as_logits.mean()})
    rate, distortion = ref["rate"].mean(), ref["distortion"].mean()
    check_close(out["loss"], distortion + rate, "the loss", mistakes={
        "loss = distortion - rate: the KL is added to the negative ELBO, not subtracted": distortion - rate,
        "the loss is the ELBO itself; the Trainer minimises, so return -ELBO = distortion + rate": -(distortion + rate)})


def check_train_epoch(fn) -> None:
    """``fn(model, batches, objective)`` trains one epoch with `course_lib.Trainer` (Adam, lr 1e-3)
    and returns its dict of mean terms (introduced in: Lab: build your own VAE).
    """
    from ..objectives import elbo

    batches = [torch.bernoulli(torch.rand(16, *MNIST_SHAPE, generator=torch.Generator().manual_seed(s)))
               for s in range(5)]
    model, _ = _setup()
    start = copy.deepcopy(model.state_dict())

    def reference(epochs: int = 1, lr: float = 1e-3, train: bool = True) -> tuple[dict, dict]:
        twin = VAE(model.config)
        twin.load_state_dict(start)
        torch.manual_seed(0)
        trainer = Trainer(twin, elbo, lr=lr, progress=False, verbose=False)
        terms = [trainer.train_epoch(batches) for _ in range(epochs)][-1] if train else trainer.evaluate(batches)
        return terms, twin.state_dict()

    expected, weights = reference()
    torch.manual_seed(0)
    terms = fn(model, batches, elbo)
    if isinstance(terms, dict) and isinstance(terms.get("train"), dict):     # Trainer.fit's history: its last epoch
        terms = {k: v[-1] for k, v in terms["train"].items() if v}
    if not isinstance(terms, dict) or "loss" not in terms:
        raise ExerciseError("return what Trainer.train_epoch returns: a dict of mean terms with 'loss'")
    untouched = all(torch.equal(model.state_dict()[k], start[k]) for k in start)
    if untouched:
        evaluated = reference(train=False)[0]["loss"]
        if math.isclose(float(terms["loss"]), evaluated, rel_tol=1e-4):
            raise ExerciseError("the model was evaluated (Trainer.evaluate), not trained: call train_epoch")
        raise ExerciseError("the model passed in was not trained (its weights did not change): give that model "
                            "itself to the Trainer, not a copy")
    check_close(terms["loss"], expected["loss"], "the epoch's mean loss", rtol=1e-4, mistakes={
        "two epochs were run instead of one": reference(epochs=2)[0]["loss"],
        "the learning rate is not 1e-3 (Adam's default in Trainer is lr=1e-3)": reference(lr=1e-2)[0]["loss"]})
    moved = max(float((model.state_dict()[k] - weights[k]).abs().max()) for k in weights)
    if moved > 1e-4:
        raise ExerciseError("the loss is right but the weights after the epoch are not those of one Adam epoch "
                            "at lr 1e-3 on these batches: was the model changed after training?")


def check_iwae(fn) -> None:
    """``fn(model, x, eps)`` with eps (K, B, M) returns the batch mean of log (1/K) sum_k w_k.

    Introduced in: Lab: build your own VAE.
    """
    model, x = _setup()
    eps = torch.randn(K, B, M, generator=torch.Generator().manual_seed(4))
    expected = iwae_bound(model, x, K, torch.Generator().manual_seed(4))["bound"].detach()
    with torch.no_grad():
        q, p = model.encode(x), model.prior()
        z = q.mean + q.stddev * eps                                           # (K, B, M)
        log_px = model.decode(z).log_prob(x)                                  # (K, B)
        log_w = log_px + p.log_prob(z) - q.log_prob(z)
        swapped = log_px + q.log_prob(z) - p.log_prob(z)
    check_close(fn(model, x, eps), expected, "the bound", sizes={"batch": B, "samples": K}, mistakes={
        "the mean of log w: that is the ELBO (K = 1 on average), not log of the mean of w": log_w.mean(),
        "log K was not subtracted: logsumexp gives log sum_k w_k, the bound is log (1/K) sum_k w_k":
            torch.logsumexp(log_w, 0).mean(),
        "logsumexp over the images (dim 1) instead of over the K samples (dim 0)":
            (torch.logsumexp(log_w, 1) - math.log(K)).mean(),
        "log q and log p are swapped in log w = log p(x|z) + log p(z) - log q(z|x)":
            (torch.logsumexp(swapped, 0) - math.log(K)).mean(),
        "log w is missing the prior and posterior terms (only log p(x|z))":
            (torch.logsumexp(log_px, 0) - math.log(K)).mean()})

