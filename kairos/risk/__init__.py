"""Pure risk checks: an order (or a position) and the `RiskState` in, a verdict out. No I/O."""

from kairos.risk.posttrade import Exit, PostTrade
from kairos.risk.pretrade import PreTrade, reduces
from kairos.risk.state import Grid, RiskState, TokenBucket

__all__ = ["Exit", "Grid", "PostTrade", "PreTrade", "RiskState", "TokenBucket", "reduces"]
