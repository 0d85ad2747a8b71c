"""Shared by the data tests: a DataError whose message matches and is one line."""

import pytest

from vaekit.errors import DataError


def raises_one_line(match: str, exc: type[Exception] = DataError):
    """pytest.raises(exc) whose message must match and be a single line."""

    class _Ctx:
        def __enter__(self):
            self._cm = pytest.raises(exc, match=match)
            self.info = self._cm.__enter__()
            return self.info

        def __exit__(self, *exc):
            handled = self._cm.__exit__(*exc)
            if handled:
                msg = str(self.info.value)
                assert "\n" not in msg and msg.strip() == msg and msg, repr(msg)
            return handled

    return _Ctx()
