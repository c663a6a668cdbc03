//! Model-based tests of `Queue` (to be written).
