"""What a clean console means: a successful run prints no error-level line and no traceback (issue 28)."""
import re

# An error-level line: Ray core's C++ log (`[2026-12-03 18:22:14,231 E 6481 6567] core_worker.cc:...`)
# or Python logging's ERROR.
ERROR_LINE = re.compile(r"\[[\d-]+ [\d:,]+ E \d+ \d+\] .*|\bERROR\b.*")


def assert_clean(out: str) -> None:
    """`out` has neither an error-level line nor a traceback; the first one found is shown."""
    error = ERROR_LINE.search(out)
    assert error is None, error.group(0)
    assert "Traceback" not in out, out[max(0, out.index("Traceback") - 400):][:2000]
