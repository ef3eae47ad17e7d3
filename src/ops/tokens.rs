//! `tokens` (placeholder: being written).

use crate::ops::{Kernel, kernel};

pub const KERNEL: Kernel = kernel!("tokens");
