#!/usr/bin/env bash
# Prints one plain closing line for one or more meson test logs
# (BUILD/meson-logs/testlog.json), whatever meson printed above:
#   tests: N passed, F failed, S skipped
# Check's own test cases are counted (from each program's "Checks: N,
# Failures: F, Errors: E" line); a program with no such line counts as one.
set -euo pipefail
python3 - "$@" <<'PY'
import json, re, sys
passed = failed = skipped = 0
for path in sys.argv[1:]:
    for line in open(path):
        t = json.loads(line)
        m = re.search(r"Checks: (\d+), Failures: (\d+), Errors: (\d+)",
                      t.get("stdout") or "")
        if t.get("result") == "SKIP":
            skipped += 1
        elif m:
            n, f, e = map(int, m.groups())
            passed += n - f - e
            failed += f + e
            if t.get("result") not in ("OK", "EXPECTEDFAIL") and f + e == 0:
                failed += 1   # crashed or timed out after its last check
        elif t.get("result") in ("OK", "EXPECTEDFAIL"):
            passed += 1
        else:
            failed += 1
print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
PY
