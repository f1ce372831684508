"""Fixtures for the launcher tests: `slurm`, a real local Slurm cluster (tests/slurm_cluster.py)."""

from tests.slurm_cluster import slurm

__all__ = ["slurm"]
