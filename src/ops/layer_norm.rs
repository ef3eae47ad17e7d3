//! `layer_norm` (placeholder: being written).

use crate::ops::{Kernel, kernel};

pub const KERNEL: Kernel = kernel!("layer_norm");
