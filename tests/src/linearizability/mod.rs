//! Linearizability checking of recorded histories (being written).
