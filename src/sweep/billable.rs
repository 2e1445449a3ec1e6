//! What remains after a destroy.
