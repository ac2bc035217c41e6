"""Persona inference (PI): one-sentence personas of users who prefer each side of a preference pair."""

import os

# On a CPU shared with other jobs, OpenMP threads that spin while waiting for each other made torch 6-10x slower
# (2-core machine, other jobs running); threads that sleep cost little on an idle machine. Must precede loading torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
