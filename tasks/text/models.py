"""The offline models: language identification and sentiment per supported language.

Everything runs on what the packages ship; nothing is downloaded at run time:

- language: ``py3langid`` (langid.py's model of 97 languages, in the wheel);
- English: VADER (``vadersentiment``; its lexicon is in the wheel), the compound score;
- Chinese: ``snownlp``'s naive Bayes model trained on product reviews (in the package),
  ``2 p - 1`` of its probability of positive. It loads in seconds, so only on the first
  Chinese text.

Russian has no usable model here: ``dostoevsky`` downloads its model at first use. A text in
any other language, or whose language is unsure, is ``language_unsupported`` and has no score.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from py3langid.langid import MODEL_FILE, LanguageIdentifier
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

SUPPORTED: tuple[str, ...] = ("en", "zh")
# In customer text these name a topic (the support team), not praise: VADER's lexicon scores
# "support" +1.7, so "support never replied" read as positive. They are removed from it.
TOPIC_WORDS: tuple[str, ...] = ("support", "supported", "supporting", "supports")
UNSUPPORTED = "language_unsupported"


@dataclass(frozen=True)
class Reading:
    """What the models read in one text: its language, how sure, and its sentiment."""

    language: str
    confidence: float
    sentiment: float | None  # [-1, 1]; None for a language without a model


@cache
def _identifier() -> Any:
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


@cache
def _english() -> Callable[[str], float]:
    vader = SentimentIntensityAnalyzer()
    for word in TOPIC_WORDS:
        vader.lexicon.pop(word, None)
    return lambda text: float(vader.polarity_scores(text)["compound"])


@cache
def _chinese() -> Callable[[str], float]:
    # imported here: snownlp loads its trained model on import (about 5 s)
    from snownlp import SnowNLP

    return lambda text: 2.0 * float(SnowNLP(text).sentiments) - 1.0


_SCORERS: dict[str, Callable[[], Callable[[str], float]]] = {"en": _english, "zh": _chinese}


def load_models() -> None:
    """Load every model now (language, English, Chinese), e.g. in a background thread."""
    _identifier()
    for scorer in _SCORERS.values():
        scorer()


def read_text(text: str, min_confidence: float) -> Reading:
    """Identify the language of ``text`` and score its sentiment when a model covers it."""
    language, p = _identifier().classify(text)
    confidence = float(p)
    if language not in _SCORERS or confidence < min_confidence:
        return Reading(str(language), confidence, None)
    score = _SCORERS[language]()(text)
    return Reading(str(language), confidence, max(-1.0, min(1.0, round(score, 4))))


def read_texts(texts: Iterable[str], min_confidence: float) -> dict[str, Reading]:
    """Read each distinct text once."""
    return {t: read_text(t, min_confidence) for t in dict.fromkeys(texts)}
