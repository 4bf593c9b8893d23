//! Continuous games on boxes of strategies, and the quadratic pruning game.
