"""Mixer: the attribute vocabulary, the expression language, policy checks, quotas and reports."""

# --- attributes and the expression language (PURE) ----------------------------------------------
from ._attributes import MISSING as MISSING
from ._attributes import VOCABULARY as VOCABULARY
from ._attributes import Bag as Bag
from ._attributes import Manifest as Manifest
from ._attributes import ValueType as ValueType
from ._expr import Compiler as Compiler
from ._expr import EvaluationError as EvaluationError
from ._expr import Expression as Expression
from ._expr import compile_expression as compile_expression
from ._expr import parse_go_duration as parse_go_duration
from ._expr import parse_timestamp as parse_timestamp
from ._expr_config import check_config_expression as check_config_expression
from ._expr_config import install_expression_checker as _install_expression_checker
from ._expr_parse import ExpressionError as ExpressionError
from ._expr_parse import format_expression as format_expression
from ._expr_parse import parse_expression as parse_expression

_install_expression_checker()  # config validation now type-checks expressions (_expr_config)
# --- end of attributes and the expression language ----------------------------------------------
