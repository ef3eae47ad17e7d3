//! `max_pool` (placeholder: being written).

use crate::ops::{Kernel, kernel};

pub const KERNEL: Kernel = kernel!("max_pool");
