"""A small review scorer: the pipeline the README runs over examples/data/reviews.jsonl.

Run: ``python examples/quickstart.py [FILE.jsonl]``. Prints one JSON line per review,
then the metrics of the batch on stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from packflow import Pipeline, Records

pipe = Pipeline("review-scorer")


@pipe.initialize
def lexicon() -> dict[str, float]:
    # Stands in for loading model weights: runs once per built instance.
    return {"great": 1.0, "works": 0.5, "value": 0.5, "broke": -1.0, "terrible": -1.5}


@pipe.transform_inputs
def tokenize(records: Records) -> list[list[str]]:
    return [record["text"].lower().replace(",", " ").split() for record in records]


@pipe.execute
def score(batch: list[list[str]], lexicon: dict[str, float]) -> list[float]:
    return [sum(lexicon.get(token, 0.0) for token in tokens) for tokens in batch]


@pipe.transform_outputs
def label(scores: list[float]) -> list[dict[str, Any]]:
    return [
        {
            "score": value,
            "label": "positive" if value > 0 else "negative" if value < 0 else "neutral",
        }
        for value in scores
    ]


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else Path(__file__).parent / "data" / "reviews.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    scorer = pipe.build()
    for record, output in zip(records, scorer(records), strict=True):
        print(json.dumps({"id": record["id"], **output}))
    print(f"metrics: {scorer.get_metrics().as_dict()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
