"""A fortio-like load client: ``python -m trimesh.samples.loadgen -c 3 -qps 0 -n 30 http://httpbin:8000/get``."""

from ._load import ERROR_CODE as ERROR_CODE
from ._load import LoadResult as LoadResult
from ._load import format_report as format_report
from ._load import run_load as run_load
from ._load import split_calls as split_calls
