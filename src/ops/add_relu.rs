//! `add_relu` (placeholder: being written).

use crate::ops::{Kernel, kernel};

pub const KERNEL: Kernel = kernel!("add_relu");
