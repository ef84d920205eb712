"""BookInfo, the Istio docs' sample application, as four small Trio services.

productpage v1 calls details v1 and reviews; reviews v1 shows no stars, v2 calls ratings and shows
black stars, v3 red stars; ratings v1 serves the stars. Each service is a handler class (importable,
for in-process use and tests) and a runnable module:

    python -m trimesh.samples.bookinfo.productpage --address 127.0.0.5 --port 9080
    python -m trimesh.samples.bookinfo.details     --address 127.0.0.3 --port 9080
    python -m trimesh.samples.bookinfo.reviews     --address 127.0.0.6 --port 9080 --version v2
    python -m trimesh.samples.bookinfo.ratings     --address 127.0.0.4 --port 9080

The docs' rule files (``kube/route-rule-all-v1.yaml`` …) live next to these modules, as package data.
"""

from ._common import FORWARDED_HEADERS as FORWARDED_HEADERS
from ._common import forwarded_headers as forwarded_headers
from ._common import service_url as service_url
from ._details import BOOK_DETAILS as BOOK_DETAILS
from ._details import Details as Details
from ._productpage import DETAILS_UNAVAILABLE as DETAILS_UNAVAILABLE
from ._productpage import PRODUCT as PRODUCT
from ._productpage import RATINGS_UNAVAILABLE as RATINGS_UNAVAILABLE
from ._productpage import REVIEWS_TRIES as REVIEWS_TRIES
from ._productpage import REVIEWS_UNAVAILABLE as REVIEWS_UNAVAILABLE
from ._productpage import UPSTREAM_TIMEOUT as UPSTREAM_TIMEOUT
from ._productpage import ProductPage as ProductPage
from ._productpage import render_product_page as render_product_page
from ._ratings import RATINGS as RATINGS
from ._ratings import Ratings as Ratings
from ._reviews import REVIEWS as REVIEWS
from ._reviews import REVIEWS_VERSIONS as REVIEWS_VERSIONS
from ._reviews import Reviews as Reviews
from ._reviews import REVIEW_RATINGS_UNAVAILABLE as REVIEW_RATINGS_UNAVAILABLE

