"""What a BookInfo product page shows, read from its HTML (PURE: no I/O, no clock).

The Istio tasks are judged by eye: "no stars", "black stars", "red stars", "Sorry, product reviews
are currently unavailable for this book." (traffic-tasks.md §2.3, §3.2, §4.1, §5.2). The demo's
checks and the end-to-end tests need the same judgement from a program, so :func:`read_page` turns
the page into a :class:`PageView` and :attr:`PageView.kind` names what a person would see:

==========================  ==============================================================
kind                        the page shows
==========================  ==============================================================
``reviews-unavailable``     productpage gave up on reviews (3 s x 2 tries, or a mesh error)
``ratings-unavailable``     reviews v2/v3 answered, but their ratings call failed
``black`` / ``red``         the reviews carry stars of that colour (reviews v2 / v3)
``no-stars``                the reviews carry no ratings at all (reviews v1)
``no-reviews``              no reviews section: not a product page
==========================  ==============================================================

The markers are the sample's (trimesh/samples/bookinfo/_productpage.py and _reviews.py): stars are
``glyphicon-star`` spans inside ``<font color="black|red">``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

REVIEWS_UNAVAILABLE = "Sorry, product reviews are currently unavailable for this book."
DETAILS_UNAVAILABLE = "Sorry, product details are currently unavailable for this book."
RATINGS_UNAVAILABLE = "Ratings service is currently unavailable"  # reviews v2/v3, per review
REVIEWS_HEADING = "Book Reviews"
DETAILS_HEADING = "Book Details"

_FONT = re.compile(r'<font color="([a-z]+)">(.*?)</font>', re.S)
_FULL_STAR = re.compile(r'class="glyphicon glyphicon-star"')

KINDS = ("reviews-unavailable", "ratings-unavailable", "black", "red", "no-stars", "no-reviews")


@dataclass(frozen=True)
class PageView:
    """The observable facts of one product page."""

    details: bool  # the details table is there
    reviews: bool  # the reviews section is there (reviews answered)
    reviews_unavailable: bool
    ratings_unavailable: bool
    colors: tuple[str, ...]  # star colours, one per rated review, in page order
    stars: tuple[int, ...]  # full stars per rated review, in page order
    user: str | None  # "Signed in as ..." when a user cookie was sent

    @property
    def kind(self) -> str:
        if self.reviews_unavailable:
            return "reviews-unavailable"
        if self.ratings_unavailable:
            return "ratings-unavailable"
        if self.colors:
            return self.colors[0] if len(set(self.colors)) == 1 else "mixed"
        return "no-stars" if self.reviews else "no-reviews"


_SIGNED_IN = re.compile(r"Signed in as ([^<]*?) <a")


def read_page(html: str) -> PageView:
    """The :class:`PageView` of a product page's HTML (any text: unknown pages read as empty)."""
    colors = []
    stars = []
    for color, inner in _FONT.findall(html):
        colors.append(color)
        stars.append(len(_FULL_STAR.findall(inner)))
    user = _SIGNED_IN.search(html)
    return PageView(
        details=DETAILS_HEADING in html,
        reviews=REVIEWS_HEADING in html,
        reviews_unavailable=REVIEWS_UNAVAILABLE in html,
        ratings_unavailable=RATINGS_UNAVAILABLE in html,
        colors=tuple(colors),
        stars=tuple(stars),
        user=user.group(1) if user else None,
    )
