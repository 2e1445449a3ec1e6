//! Walks a DAG of operations concurrently: each starts the moment its dependencies finish,
//! limited per AWS service and region (not by one global cap); a failure stops its dependents
//! while independent branches go on; an interruption starts nothing new and lets in-flight
//! operations finish.

pub mod apply;
pub mod refresh;
pub mod summary;
pub mod walk;

pub use walk::{Limits, OpResult, Operation, Walk, WalkEvent, WalkReport};
