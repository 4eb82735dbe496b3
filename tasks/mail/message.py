"""One e-mail message: plain text, HTML with CSS inlined, CID images and CSV attachments.

Every header is made safe from untrusted text.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import Any

import css_inline

from tasks.report.templates import environment

DEFAULT_SENDER = "customer-health@localhost"
# 7-bit transfer encodings: every server takes the message, and no line exceeds SMTP's limit.
MAIL_POLICY = policy.SMTP.clone(cte_type="7bit")
LINEBREAKS = re.compile(r"[\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_INLINER = css_inline.CSSInliner(
    keep_style_tags=False, keep_link_tags=False, keep_at_rules=False, load_remote_stylesheets=False
)


def header_safe(text: str, limit: int = 200) -> str:
    """Fold line breaks and control characters out of header text (no header injection)."""
    return _CONTROL.sub(" ", LINEBREAKS.sub(" ", text)).strip()[:limit]


def valid_address(address: str) -> bool:
    """Return whether ``address`` is one plain ASCII e-mail address (no name, no list)."""
    return len(address) <= 254 and bool(_EMAIL.match(address))


def _inline(html: str) -> str:
    # E-mail clients drop <style>: move every rule onto the elements it styles.
    return _INLINER.inline(html)


@dataclass(frozen=True)
class Chart:
    """One PNG chart embedded in an e-mail, shown where its Content-ID is referenced."""

    name: str
    caption: str
    png: bytes
    alt: str
    width: int
    height: int


def _boundary() -> str:
    # A random boundary set when each multipart is made: without one, the generator makes its
    # own and searches the whole flattened body (every base64 image) for it, per part.
    return f"chs-{secrets.token_hex(16)}"


def build_message(
    sender: str,
    to: list[str],
    subject: str,
    context: dict[str, Any],
    attachments: dict[str, bytes],
    charts: list[Chart] | None = None,
) -> EmailMessage:
    """Build one message: text, HTML (inlined CSS, CID images) and CSV attachments."""
    env = environment()
    good = [a for a in to if valid_address(a)]
    if not good:
        raise ValueError("a message needs at least one valid recipient")
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    msg = EmailMessage(policy=MAIL_POLICY)
    msg["From"] = sender
    msg["To"] = ", ".join(good)
    msg["Subject"] = header_safe(subject)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=domain)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no out-of-office replies
    msg["X-Auto-Response-Suppress"] = "All"
    # short Content-IDs: a folded Content-ID header confuses some mail clients
    cids = {c.name: f"<{c.name}.{secrets.token_hex(6)}@{domain}>" for c in charts or []}
    images = [
        {
            "cid": cids[c.name][1:-1],
            "caption": c.caption,
            "alt": c.alt,
            "width": c.width,
            "height": c.height,
        }
        for c in charts or []
    ]
    optional = {"attach_note": None, "sections": None, "summary": None, "headline": None}
    ctx = {**optional, **context, "subject": header_safe(subject), "images": images}
    msg.set_content(env.get_template("email.txt.j2").render(**ctx))
    msg.make_alternative(boundary=_boundary())
    msg.add_alternative(_inline(env.get_template("email.html.j2").render(**ctx)), subtype="html")
    html = msg.get_body(("html",))
    assert isinstance(html, EmailMessage)
    if charts:
        html.make_related(boundary=_boundary())
    for c in charts or []:
        html.add_related(
            c.png, "image", "png", cid=cids[c.name], filename=f"{c.name}.png", disposition="inline"
        )
    if attachments:
        msg.make_mixed(boundary=_boundary())
    for name, data in attachments.items():
        msg.add_attachment(data, maintype="text", subtype="csv", filename=name)
    return msg
