"""The theme lexicon: which words put a text under a theme (deterministic, documented).

A theme is a list of keywords; a text has the theme when it contains one of them. English
keywords match whole words (case-insensitive, a keyword may end in ``*`` to match any word
starting with it); Chinese keywords match as substrings (Chinese has no spaces). The README
lists the built-in lexicon; ``[text] themes`` replaces it.
"""

from __future__ import annotations

import re

import polars as pl

# fmt: off
THEMES: dict[str, list[str]] = {
    "pricing": [
        "price*", "pricing", "expensive", "cost*", "invoice*", "billing", "bill*", "charge*",
        "discount*", "refund*", "overcharg*", "fee*",
        "价格", "贵", "收费", "费用", "发票", "账单", "退款",
    ],
    "onboarding": [
        "onboarding", "setup", "set up", "getting started", "training", "implementation",
        "migration", "tutorial*", "documentation", "docs",
        "上手", "入门", "培训", "安装", "配置", "迁移", "文档",
    ],
    "performance": [
        "slow*", "lag*", "latency", "speed", "performance", "timeout*", "loading", "fast*",
        "慢", "卡顿", "速度", "性能", "加载", "超时",
    ],
    "support": [
        "support", "helpdesk", "help desk", "agent*", "response time", "ticket*",
        "customer service", "answered", "reply", "replied", "respond*",
        "客服", "支持", "回复", "工单", "售后",
    ],
    "reliability": [
        "outage*", "down", "downtime", "crash*", "bug*", "error*", "broken", "unavailable",
        "data loss", "unstable", "reliab*",
        "宕机", "崩溃", "故障", "错误", "中断", "不稳定", "丢失",
    ],
    "usability": [
        "confusing", "intuitive", "easy to use", "hard to use", "interface", "navigation",
        "ui", "ux", "clunky",
        "界面", "好用", "难用", "复杂", "直观",
    ],
    "features": [
        "feature*", "missing", "integration*", "api", "roadmap", "export*",
        "功能", "集成", "接口", "缺少",
    ],
}
# fmt: on

_CJK = re.compile(r"[\u3400-\u9fff]")


def _pattern(words: list[str]) -> str:
    parts = []
    for w in words:
        if _CJK.search(w):
            parts.append(re.escape(w))
        elif w.endswith("*"):
            parts.append(r"\b" + re.escape(w[:-1].lower()) + r"\w*")
        else:
            parts.append(r"\b" + re.escape(w.lower()) + r"\b")
    return "(?i)(?:" + "|".join(parts) + ")"


def themes_expr(text: pl.Expr, lexicon: dict[str, list[str]] | None = None) -> pl.Expr:
    """Return the sorted list of themes each text has (empty list without a match or text)."""
    lex = THEMES if lexicon is None else lexicon
    hits = [
        pl.when(text.str.contains(_pattern(words)).fill_null(False)).then(pl.lit(name))
        for name, words in sorted(lex.items())
        if words
    ]
    if not hits:
        return pl.lit([], pl.List(pl.String))
    return pl.concat_list(hits).list.drop_nulls()
