"""GAN false positives (Hintersdorf et al. 2022, Sec. 4): DCGAN generators trained on the reserve
split (disjoint from every member set), their samples as non-member sources, streaming FPR over
unlimited fakes, a latent-space search for confident fakes, and FID.

Submodules: ``config`` (the ``gan:`` section), ``models`` (the GANS registry), ``training``
(cached, resumable training), ``sampling``, ``sources`` (``fake``, ``fake_conditional``),
``streaming``, ``search`` and ``hooks`` (what the study runs after each evaluated cell).
This package imports nothing at import time, so ``overconf.config`` can read ``gan.config``.
"""
