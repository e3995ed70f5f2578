//! The golden model: a pure-Rust, bit-exact twin of the RTL (docs/protocol.md).
//! (Stub: interface fixed, implementation pending.)

/// Sizes and features of one device; INFO reports them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceConfig {
    pub rows: usize,
    pub cols: usize,
    pub wmem_bytes: usize,
    pub buf_bytes: usize,
    pub acc_words: usize,
    pub features: u32,
}

impl DeviceConfig {
    /// The configuration `dla_sim_top` is built with for a `rows`x`cols` array.
    pub fn sim(rows: usize, cols: usize) -> Self {
        DeviceConfig { rows, cols, wmem_bytes: 1 << 20, buf_bytes: 1 << 18, acc_words: 1 << 17, features: 0b0_1111 }
    }
}

/// Device state and semantics.
pub struct Model {
    cfg: DeviceConfig,
}

impl Model {
    pub fn new(cfg: DeviceConfig) -> Self {
        Model { cfg }
    }
    pub fn config(&self) -> &DeviceConfig {
        &self.cfg
    }
    /// Execute one request whose frame passed its CRC check: returns the
    /// status code and, for OK, the reply payload.
    pub fn execute(&mut self, _op: u8, _payload: &[u8]) -> (u8, Vec<u8>) {
        (2, Vec::new())
    }
}
