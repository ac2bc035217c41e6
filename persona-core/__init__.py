"""Shared infrastructure of both stages: errors, the CLI parser, secrets, the embedded model, I/O, datasets,
prompt templates, LLM backends, the request runner, run folders, and the layout contract between stages."""

import os

# On a CPU shared with other jobs, OpenMP threads that spin while waiting for each other made torch 6-10x slower
# (2-core machine, other jobs running); threads that sleep cost little on an idle machine. Must precede loading torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
