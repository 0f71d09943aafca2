"""Classic variational inference on models with exact answers (Part I of the course).

Modules: `gaussian` (conjugate Gaussian models, closed-form Gaussian KL), `cavi`
(coordinate-ascent updates and ELBOs), `estimators` (score-function, baseline and
reparameterised gradient estimators, natural-gradient steps, the stochastic-gradient loop),
`logistic` (2-D Bayesian logistic regression: Laplace, full-covariance BBVI, grid reference).
"""

from .gaussian import (ConjugateGaussian, kl_diag_gaussian, kl_full_gaussian, kl_normal,
                       ppca_elbo, ppca_log_evidence, ppca_m_step, ppca_posterior)
from .cavi import (MeanField, NormalGamma, cavi_mixture, cavi_normal_gamma, cavi_update_assignments,
                   cavi_update_means, cavi_update_mu, cavi_update_tau, mixture_elbo,
                   normal_gamma_elbo, normal_gamma_log_evidence, normal_gamma_posterior, sample_mixture)
from .fitting import StepSizes, fit_diag_gaussian
from .estimators import (LinearRegression, diag_gaussian, gaussian_fisher_diag, natural_gradient,
                         natural_gradient_step, reparam_grad, score_function_grad, score_function_grad_baseline,
                         score_function_grad_rb)
