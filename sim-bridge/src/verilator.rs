//! In-process Verilated `dla_sim_top` as a [`Link`](crate::link::Link).
//! (Stub: replaced by the Verilator bridge.)

/// Errors opening the Verilated model.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// No model of that array size was compiled into this build.
    #[error("no Verilated model of size {rows}x{cols} in this build (built: {built})")]
    NotBuilt { rows: usize, cols: usize, built: String },
}

/// The Verilated DLA.
pub struct SimLink {
    name: String,
}

impl SimLink {
    /// Open a fresh, reset instance of the `rows`x`cols` model.
    pub fn open(rows: usize, cols: usize) -> Result<SimLink, SimError> {
        let _ = SimLink { name: String::new() }.name;
        Err(SimError::NotBuilt { rows, cols, built: String::new() })
    }
}

impl crate::link::Link for SimLink {
    fn name(&self) -> &str {
        &self.name
    }
    fn send(&mut self, _bytes: &[u8]) -> std::io::Result<()> {
        unimplemented!()
    }
    fn recv(&mut self, _buf: &mut [u8], _t: std::time::Duration) -> std::io::Result<usize> {
        unimplemented!()
    }
}
