"""Experiments: what combines environments with algorithms.

Exact-truth comparisons ("how well it thinks it does" vs "how well it does"), cross-fitting on
suite problems, FQE on gymnax control tasks, result tables and labels. This is the only layer
(with the trainers and the CLI) that imports both :mod:`offrl_jax.envs` and the algorithm
families; the families themselves never import environments.
"""
