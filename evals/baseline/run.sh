#!/usr/bin/env bash
# Measure upstream's workshop prompt (baseline) on an eval set, with the agent's own
# eval command, client and context format: only the prompt differs.
#   evals/baseline/run.sh [CASES.jsonl] [extra `eval` options...]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cases="${1:-$root/tests/evals/calculator.jsonl}"
shift || true
cd "$root"
uv run baml-cli generate --from "$here/baml_src" >/dev/null
# The baseline baml_client shadows the real one for this process only.
PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" uv run calculator-agent eval "$cases" \
  --report "$here/reports/baseline-$(basename "$cases" .jsonl).json" "$@"
