"""What CPython 3.6-3.8 lack that the offline side uses, in one place (the pyz runs on 3.6+)."""

import subprocess
import sys
from typing import Any, Dict

# subprocess.run(capture_output=True, text=True) needs 3.7: the same, spelled as 3.6 knows it.
CAPTURE_TEXT: Dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE,
                                "universal_newlines": True}


def _isascii(text: str) -> bool:
    try:
        text.encode("ascii")
    except UnicodeEncodeError:
        return False
    return True


# str.isascii needs 3.7; the method is used where there is one (it does not copy the string).
isascii = str.isascii if sys.version_info >= (3, 7) else _isascii
