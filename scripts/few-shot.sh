#!/usr/bin/env bash
# The original code's name for scripts/few_shot.sh: the same script, the same variables.
exec bash "$(dirname "$0")/few_shot.sh" "$@"
