#!/usr/bin/env bash
# The whole test suite: installs what it needs, then checks generated code, types, the Python
# worker (pytest) and the TypeScript services (unit, integration against a real Redis, end to end
# through real processes).
source "$(dirname "$0")/env.sh"
echo "== generated code is fresh"
bash scripts/gen-proto.sh --check
node scripts/gen-contracts.ts --check
node scripts/gen-study-protocol.ts --check
echo "== typecheck"
npx tsc -p tsconfig.json
echo "== python worker tests"
workers-python/.venv/bin/python -m pytest -q workers-python/tests
echo "== typescript tests"
node --test --test-concurrency=1 'test/unit/**/*.test.ts' 'test/integration/**/*.test.ts' 'test/e2e/**/*.test.ts' 'test/chaos/**/*.test.ts' 'test/deploy/**/*.test.ts' 'test/ops/**/*.test.ts' 'test/cli/**/*.test.ts' 'test/dashboard/**/*.test.ts' 'test/security/**/*.test.ts'
