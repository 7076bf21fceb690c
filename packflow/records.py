"""The records contract: what flows into and out of a pipeline."""

from __future__ import annotations

from typing import Any

from typing_extensions import TypeAlias

__all__ = ["Records"]

#: A batch of events: what the ``records`` and ``passthrough`` preprocessors hand to the
#: first stage, and what the last stage must return.
Records: TypeAlias = list[dict[str, Any]]
