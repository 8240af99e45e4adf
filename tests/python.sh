#!/usr/bin/env bash
# The Python package's tests (clients/python/tests) against the patchbayd
# and patchbay of this build ($PATCHBAYD, $PATCHBAY_CLI, set by meson).
# Uses Debian's /usr/bin/python3 (or $PATCHBAY_PYTHON), not whatever python
# comes first in PATH. Exit 77 (meson: SKIP) when msgpack or pytest is
# missing: apt-get install python3-msgpack python3-pytest.
set -euo pipefail
src=${PATCHBAY_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
py=${PATCHBAY_PYTHON:-/usr/bin/python3}
if [ ! -x "$py" ]; then
	echo "SKIP: no $py (the Python tests need python3, python3-msgpack and python3-pytest)"
	exit 77
fi
for mod in msgpack pytest; do
	if ! "$py" -c "import $mod" 2>/dev/null; then
		echo "SKIP: $py cannot import $mod (apt-get install python3-$mod)"
		exit 77
	fi
done
export PYTHONDONTWRITEBYTECODE=1
cd "$src"
exec "$py" -m pytest -q -p no:cacheprovider clients/python/tests "$@"
