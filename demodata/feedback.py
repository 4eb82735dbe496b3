"""The demo's voice of the customer: reviews, social posts and complaints in English and Chinese.

Reviews follow the account's latent health like every other dataset; complaints come more
often from unhealthy accounts. About one account in five writes in Chinese. One healthy,
long-standing account (``planted_account``) turns: praise until four months before the end,
then a run of negative reviews and complaints in the last six weeks, so its satisfaction
falls and the negative-feedback playbook fires (a test checks it on the demo).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from demodata.crm import finish
from demodata.population import Population, Window, day_clock, health_at, sample_points, to_ts
from tasks.schemas import FEEDBACK

# fmt: off
_GOOD = {
    "en": (
        "Great product, onboarding was smooth and the team loves the dashboards.",
        "Support answered within an hour and fixed it. Excellent service!",
        "Reliable and fast; we have not had a single outage this year.",
        "Love the new export feature, it saves us hours every week.",
    ),
    "zh": (
        "产品很好用，非常满意，界面直观。",
        "客服回复很快，问题解决了，谢谢！",
        "系统稳定，速度快，团队都很喜欢。",
        "新功能很实用，强烈推荐。",
    ),
}
_BAD = {
    "en": (
        "Terrible experience: the app is slow and crashes every day.",
        "Support never replied to our ticket for a week. Very disappointed.",
        "The price increase is unacceptable and billing charged us twice.",
        "Onboarding was confusing and the documentation is useless.",
        "Another outage today, we lost data. This is awful.",
    ),
    "zh": (
        "太慢了，经常崩溃，非常失望。",
        "客服一直不回复，服务太差了。",
        "价格太贵，还重复收费，很不满意。",
        "系统又宕机了，数据丢失，太糟糕了。",
    ),
}
# fmt: on
_CHANNELS = np.array(["review", "social", "email", "chat"])


def planted_account(pop: Population) -> int:
    """Return the index of the account whose reviews turn negative: healthy, old, never churning."""
    ok = (pop.stop == pop.days) & (pop.cs_day < 0) & (pop.drop == 0) & (pop.h0 >= 0.7)
    return int(np.flatnonzero(ok)[0]) if ok.any() else 0


def _texts(rng: np.random.Generator, good: np.ndarray, zh: np.ndarray) -> list[str]:
    out = []
    for g, z in zip(good, zh, strict=True):
        pool = (_GOOD if g else _BAD)["zh" if z else "en"]
        out.append(pool[int(rng.integers(len(pool)))])
    return out


def feedback_frame(rng: np.random.Generator, pop: Population, win: Window) -> pl.DataFrame:
    """Return feedback rows in canonical columns, their tone following health."""
    zh = rng.random(pop.n) < 0.2

    def weight(a: np.ndarray, t: np.ndarray, m: int) -> np.ndarray:
        w: np.ndarray = 0.3 + 0.7 * (1.0 - health_at(pop, a, t, m))
        return w

    a, d = sample_points(rng, pop, win, weight, 4.0 * pop.n * win.months / 12)
    h = health_at(pop, a, d.astype(float), win.month_of(d))
    good = rng.random(len(a)) < h
    complaint = ~good & (rng.random(len(a)) < 0.4)
    channel = np.where(complaint, "complaint", _CHANNELS[rng.integers(0, 4, len(a))])
    p = planted_account(pop)
    before = np.arange(5) * 12 + (win.days - 200)  # praise, 5-6 months before the end
    after = win.days - 40 + np.arange(5) * 8  # then complaints and bad reviews, last 6 weeks
    a = np.concatenate([a, np.full(10, p)])
    d = np.concatenate([d, before, after])
    good = np.concatenate([good, np.ones(5, bool), np.zeros(5, bool)])
    channel = np.concatenate(
        [channel, ["review"] * 5, ["review", "complaint", "social", "complaint", "review"]]
    )
    rating = np.where(good, rng.integers(4, 6, len(a)), rng.integers(1, 3, len(a)))
    frame = pl.DataFrame(
        {
            "account_id": pop.ids.gather(a),
            "channel": channel,
            "text": _texts(rng, good, zh[a]),
            "created_at": to_ts(win, d, day_clock(rng, len(a), 13.0, 3.0)),
            "rating": np.where(channel == "complaint", np.nan, rating),
            "author": None,
            "url": None,
        }
    ).with_columns(pl.col("rating").fill_nan(None))
    return finish(frame, "created_at", "feedback_id", "F", FEEDBACK.schema)
