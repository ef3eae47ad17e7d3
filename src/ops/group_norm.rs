//! `group_norm` (placeholder: being written).

use crate::ops::{Kernel, kernel};

pub const KERNEL: Kernel = kernel!("group_norm");
