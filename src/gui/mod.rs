//! The desktop app (being written).

use anyhow::{Result, bail};

use crate::GuiArgs;

pub fn run(_args: GuiArgs) -> Result<()> {
    bail!("the desktop app is not built yet")
}
