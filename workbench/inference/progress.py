"""Progress bars for long scoring runs: a notebook widget, or text when widgets cannot go.

A kernel locked to a sealed session calls ``text_only()``: widgets need comm traffic and
binary buffers the sealed session does not carry, while text progress is an ordinary
(sealed) stream.
"""

from __future__ import annotations

from typing import Any

_TEXT_ONLY = {"on": False}


def text_only() -> None:
    _TEXT_ONLY["on"] = True


def progress_bar(total: int | None, desc: str) -> Any:
    if _TEXT_ONLY["on"]:
        from tqdm.std import tqdm
    else:
        from tqdm.auto import tqdm
    return tqdm(total=total, unit=" rows", unit_scale=True, desc=desc, leave=True)
