"""Classic variational inference on models with exact answers (Part I of the course).

Modules: `gaussian` (conjugate Gaussian models, closed-form Gaussian KL), `cavi`
(coordinate-ascent updates and ELBOs), `estimators` (score-function, baseline and
reparameterised gradient estimators, natural-gradient steps).
"""
